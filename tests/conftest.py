"""Shared test settings: offscreen EGL rendering for every test process and subprocess."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
