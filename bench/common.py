"""What every benchmark prints beside its numbers: the machine and the date."""

from __future__ import annotations

import datetime

from polyact.sysinfo import machine


def header(title: str) -> str:
    return f"# {title}\nmachine: {machine()}\ndate: {datetime.date.today().isoformat()}"
