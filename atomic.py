"""The one way polyact replaces a file or a directory so that a crash at any instant leaves the old
version or the new one, never a torn one: write a temporary, fsync it, rename it over the target, fsync
the directory that holds the new name (docs/storage.md).

Datasets (episode files, the manifest), training checkpoints and their `latest` pointer, policy
directories, run identities and evaluation stores all write through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make renames and unlinks inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes, tmp: Path | None = None) -> None:
    """Replace `path` with `data` through `tmp` (default `<name>.tmp`), fsynced and renamed; a failed
    write removes `tmp` and leaves `path` as it was."""
    path = Path(path)
    tmp = tmp or path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8), atomically."""
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace `path` with `obj` as JSON (NaN refused), atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def replace_dir_atomic(tmp: Path, final: Path) -> None:
    """Move the fully written directory `tmp` to `final` (replacing any old one) after syncing every file
    in it, then sync the parent, so `final` is never seen half written."""
    for path in sorted(Path(tmp).rglob("*"), reverse=True):
        if path.is_dir():
            fsync_dir(path)
        else:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    fsync_dir(Path(final).parent)
