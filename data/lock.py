"""The one-writer lock of a dataset (its atomic file writes are polyact/atomic.py)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from polyact.errors import DatasetError

LOCK_NAME = ".writer.lock"
_LOCK_RETRY_S = 0.5  # a reader's probe holds the lock for microseconds; a real writer holds it for hours


class WriterLock:
    """An exclusive fcntl.flock on `<dataset>/.writer.lock`, held for the writer's lifetime.

    flock locks belong to the open file, so the kernel releases them when the holder dies, even by
    SIGKILL: a crashed writer never leaves a stale lock behind.
    """

    def __init__(self, root: Path):
        self.path = root / LOCK_NAME
        self._fd: int | None = None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + _LOCK_RETRY_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                holder = _read_holder(fd)
                os.close(fd)
                raise DatasetError(
                    f"dataset {root} is being written by another process{holder} (it holds {self.path}); "
                    "one writer at a time: wait for it to finish, or stop it"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def writer_active(root: Path) -> bool:
    """Whether a live writer holds the dataset's lock (so its temporary files are writes in progress).

    Probes with a shared lock that is released at once; it never creates the lock file, so readers
    work on read-only copies of a dataset.
    """
    try:
        fd = os.open(root / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError as e:  # filesystems without flock: we cannot tell, so assume nobody writes
        if e.errno in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise
    finally:
        os.close(fd)  # closing releases the probe's lock
    return False


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        return f" (pid {pid})"
    return ""
