"""What every benchmark prints beside its numbers: the machine and the date."""

from __future__ import annotations

import datetime
import os
import platform


def machine() -> str:
    """CPU model and core count (and the date), so figures can be compared only where comparable."""
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


def header(title: str) -> str:
    return f"# {title}\nmachine: {machine()}\ndate: {datetime.date.today().isoformat()}"
