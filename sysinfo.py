"""The machine a result was measured on, recorded beside evaluation results and benchmark figures."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """CPU model and core count, so figures can be compared only where comparable."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
