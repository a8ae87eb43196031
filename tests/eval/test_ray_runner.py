"""`polyact eval runner=ray`: its settings, the message without Ray, and its progress view."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from polyact.errors import ConfigError
from polyact.eval.ray_progress import RayProgress
from polyact.eval.ray_runner import Retry
from polyact.eval.store import EPISODES_FILE, EpisodeResult


def test_runner_ray_without_ray_says_in_one_line_how_to_install_it(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if it were not installed: `import ray` raises ImportError\n"
        "from polyact.cli import main\n"
        f"sys.exit(main(['eval', 'env.tasks=reach-v3', 'runner=ray', 'out={tmp_path}']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].endswith("runner=ray needs Ray: pip install 'polyact[ray]'")
    assert not (tmp_path / EPISODES_FILE).exists()  # refused before anything ran


def test_help_does_not_import_ray():
    code = "import sys\nfrom polyact.cli import main\nmain(['eval', '--help'])\nprint('ray' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "False", out.stderr


def test_bad_runner_settings_are_refused(tmp_path, make_config):
    with pytest.raises(ConfigError, match="runner"):
        make_config(tmp_path, runner="slurm")
    with pytest.raises(ConfigError, match="runner=ray"):
        make_config(tmp_path, ray_address="127.0.0.1:6379")
    with pytest.raises(ConfigError, match="ray_retries"):
        make_config(tmp_path, runner="ray", ray_retries=-1)


def test_progress_view_counts_tasks_successes_and_retries():
    done = [EpisodeResult("reach-v3", 0, 1000000, True, 40, "reach")]
    view = RayProgress("eval MT10", ["reach-v3", "push-v3", "pick-place-v3"], 2, done, stream=io.StringIO())
    view.started(2)
    view.finished(EpisodeResult("push-v3", 0, 1000000, False, 60, "push"))
    view.retried(Retry("push-v3", 1, 1, "worker 1 lost (ActorDiedError)"))
    header, *rows = view.lines()
    assert header.startswith("eval MT10 | 2/6 episodes | success 1/2 (50%) | 2 workers | 1 retried")
    assert rows[0].split() == ["reach-v3", "1/2", "success", "1/1", "(100%)"]
    assert rows[1].split() == ["push-v3", "1/2", "success", "0/1", "(0%)"]
    assert rows[2].strip() == "0 task(s) finished, 1 not started"
    assert rows[3].strip() == "retried push-v3 episode 1 (attempt 2): worker 1 lost (ActorDiedError)"
    assert "retried push-v3 episode 1" in view.stream.getvalue()  # not a terminal: one line per retry
