"""polyact: vision-language-action policies, episode datasets, simulation suites, training, evaluation, deployment.

Subpackages: `polyact.envs` (environments and the observation/action contract), `polyact.data` (episode
datasets), `polyact.policies`, `polyact.train`, `polyact.eval`, `polyact.deploy`, `polyact.bench`.
"""

import os

# MuJoCo picks its GL backend when first imported; polyact renders offscreen, so default to EGL
# (a user's own MUJOCO_GL still wins).
os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"
