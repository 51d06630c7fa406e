"""A job's lock: the same job started twice (a rerun after Snakemake was killed, whose jobs ran on)
waits for the first instead of training beside it."""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: Path, label: str):
    """Hold an exclusive lock on `path` (released when the process ends, however it ends)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            print(f"lth: {label} is already running (process {f.read().strip() or '?'}): waiting for it to finish",
                  file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
