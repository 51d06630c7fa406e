"""A lock that holds on shared filesystems: a lock file created atomically (written under a temporary
name, then hard-linked to the lock's name, which fails if it exists: atomic on NFS and Lustre, where
flock may be local to a node; create-exclusive where a filesystem has no hard links), carrying its
holder's host, pid and a token, and kept fresh by a heartbeat (its modification time, touched every
`BEAT` seconds by a thread of the holder).

A waiter takes a lock over when its holder is gone: at once when the holder ran on this host and its
process is dead (kill -9), else when the file has not changed for `stale_after` seconds of the
waiter's own clock (a node that died; clocks of different nodes are never compared). A lock file
that cannot be read (damaged, or left by an older lth that wrote only a pid) is judged the same way.
The lock file is removed when the block ends, however it ends short of kill -9.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

BEAT = 5.0  # seconds between heartbeats
STALE_AFTER = 60.0  # seconds without a heartbeat after which a holder on another host counts as gone
POLL = 0.2  # seconds between a waiter's looks
FORMAT = "lth-lock-1"


def stale_after() -> float:
    """`STALE_AFTER`, or the environment's LTH_LOCK_STALE_SECONDS (a site whose filesystem shows other
    nodes' writes late wants more)."""
    text = os.environ.get("LTH_LOCK_STALE_SECONDS")
    if text is None:
        return STALE_AFTER
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 3 * BEAT:
        from lth.core.errors import LTHError

        raise LTHError(f"LTH_LOCK_STALE_SECONDS={text!r}: give a number of seconds above {3 * BEAT:g} "
                       f"(three heartbeats)")
    return value


def holder(path: Path) -> dict | None:
    """What the lock file says of its holder: {"host", "pid", "token"}, {} if it cannot be read as one
    of ours (damaged, an older format), None if there is no lock file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if isinstance(info, dict) and info.get("format") == FORMAT:
        return info
    if text.strip().isdigit():  # an older lth's flock lock: the pid of its last holder on this host
        return {"host": socket.gethostname(), "pid": int(text.strip()), "token": None}
    return {}


def _dead_here(info: dict) -> bool:
    """Whether the holder ran on this host and its process is gone."""
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return False
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class _Heartbeat(threading.Thread):
    def __init__(self, path: Path, token: str):
        super().__init__(daemon=True, name=f"lock heartbeat {path.name}")
        self.path, self.token, self.done = path, token, threading.Event()

    def run(self) -> None:
        while not self.done.wait(BEAT):
            if (holder(self.path) or {}).get("token") != self.token:
                print(f"lth: warning: lock {self.path} was taken over by another process while this one held it "
                      f"(was this process stopped for over {stale_after():g} s?)", file=sys.stderr, flush=True)
                return
            try:
                os.utime(self.path)
            except OSError:
                pass  # gone or unreachable for a moment: the next beat tries again


def _create(path: Path, token: str) -> bool:
    """Create the lock file with our holder record; False if it exists."""
    record = json.dumps({"format": FORMAT, "host": socket.gethostname(), "pid": os.getpid(), "token": token,
                         "since": time.time()}) + "\n"
    tmp = path.with_name(f".{path.name}.{token}.tmp")
    tmp.write_text(record)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: create-exclusive, then write
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(record)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, seen: dict) -> None:
    """Remove a stale lock file, unless someone replaced it since it was judged (then leave theirs)."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another waiter took it over first
    if holder(aside) != seen:  # a fresh holder's file, moved by mistake: put it back
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


@contextmanager
def exclusive(path: str | Path, label: str):
    """Hold the lock `path` while the block runs; wait (saying once who holds it) while another process
    does, taking it over when that holder is gone."""
    path, token, limit = Path(path), uuid.uuid4().hex, stale_after()
    path.parent.mkdir(parents=True, exist_ok=True)
    told, seen, since = False, None, time.monotonic()
    while not _create(path, token):
        info = holder(path)
        if info is None:
            continue  # released meanwhile
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            continue
        if (info, stamp) != seen:
            seen, since = (info, stamp), time.monotonic()
        gone = _dead_here(info) or time.monotonic() - since > limit
        if gone:
            who = (f"process {info['pid']} on {info['host']}" if info else
                   "an unreadable lock file (damaged, or from another lth version)")
            print(f"lth: {label}: taking over lock {path} from {who}, which is gone", file=sys.stderr, flush=True)
            _take_over(path, info)
            continue
        if not told:
            who = (f"process {info['pid']} on {info['host']}" if info else
                   f"an unreadable lock file; it is taken over when unchanged for {limit:g} s, or delete it "
                   f"if no job holds it")
            print(f"lth: {label} is already running ({who}): waiting for it to finish", file=sys.stderr, flush=True)
            told = True
        time.sleep(POLL)
    beat = _Heartbeat(path, token)
    beat.start()
    try:
        yield
    finally:
        beat.done.set()
        if (holder(path) or {}).get("token") == token:
            path.unlink(missing_ok=True)
