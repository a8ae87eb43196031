"""Run directories that resume: each records the identity of its run (`run.json`), and a rerun with other
settings is refused instead of silently mixing two runs' checkpoints or results.

`polyact train` and `polyact eval` both claim their `out` directory through `claim_run_dir`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polyact.atomic import write_json_atomic
from polyact.errors import ConfigError

RUN_FILE = "run.json"


def claim_run_dir(root: Path, identity: dict[str, Any], record: bool = True) -> bool:
    """Check that `root` holds no other run than `identity`; record it there if the directory is new and
    `record` (False: only check, as non-writing ranks do). Returns whether the run is new."""
    root = Path(root)
    identity = json.loads(json.dumps(identity))  # as it will read back (tuples become lists)
    path = root / RUN_FILE
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded != identity:
            differ = sorted(k for k in {*recorded, *identity} if recorded.get(k) != identity.get(k))
            shown = "; ".join(f"{k}: {recorded.get(k)!r} there, {identity.get(k)!r} here" for k in differ)
            raise ConfigError(
                f"{root} holds a run with other settings ({shown}); rerun with the same settings to resume it, "
                "or choose another out"
            )
        return False
    if record:
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, identity)
    return True
