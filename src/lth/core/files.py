"""Atomic file writes and JSON, with no heavy imports (the Snakefile and summaries use these)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lth.core.errors import LTHError

# What to do about a damaged result, in every message that reports one.
DAMAGED = ("run `lth verify --results <its results/EXPERIMENT folder> --delete-damaged`, then the workflow again: "
           "it recomputes what depends on the file")


@contextmanager
def atomic_path(path: str | Path, size: int | None = None):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash therefore never leaves a half-written file under the final name. A full disk (or quota)
    becomes one line naming the folder and the space needed (`size`: the bytes the file will take,
    when the writer knows), and the partial file is removed: the next run, with space freed, writes
    it anew.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if _out_of_space(exc, path.parent):
            raise LTHError(_no_space(path, 0, size)) from None
        raise
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes it 0600, and a writer may create the file anew: results are meant to be shared
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except Exception as exc:
        # libraries (torch.save) hide the errno in their own errors; our own errors say what they are
        if not isinstance(exc, LTHError) and _out_of_space(exc, path.parent):
            raise LTHError(_no_space(path, os.path.getsize(tmp) if os.path.exists(tmp) else 0, size)) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


FULL = 1 << 20  # a filesystem with less free space than this, when a write fails, is full


def _out_of_space(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
        return True
    try:
        return shutil.disk_usage(folder).free < FULL
    except OSError:
        return False


def _no_space(path: Path, written: int, size: int | None) -> str:
    free = shutil.disk_usage(path.parent).free + written  # the partial file is removed
    need = f"about {_mb(size)} needed" if size else f"over {_mb(written)} needed"
    return (f"{path.parent}: no space left on its filesystem writing {path.name} ({need}, {_mb(free)} free); "
            f"free some space there (or move the folder), then run again: nothing partial was kept")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LTHError(f"file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise LTHError(f"{path}: corrupted JSON ({exc})") from None
