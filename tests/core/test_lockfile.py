"""The lock of lth.core.lockfile: two processes that cannot use flock, a holder killed with -9, a holder
on another node that stops beating, damaged and old lock files."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lth.core import lockfile
from lth.core.errors import LTHError

# Each process runs with flock disabled, as on a shared filesystem without it: the lock must not need it.
HOLD = """
import errno, fcntl, sys, time
def no_flock(*a):
    raise OSError(errno.ENOLCK, "flock disabled")
fcntl.flock = fcntl.lockf = no_flock
from lth.core.lockfile import exclusive
with exclusive(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
print("released", flush=True)
"""


def _hold(path, label, seconds):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen([sys.executable, "-c", HOLD, str(path), label, str(seconds)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(predicate, what, limit=120.0):
    deadline = time.time() + limit
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_processes_without_flock_exclude_each_other_and_kill_9_hands_the_lock_on(tmp_path):
    path = tmp_path / ".locks" / "job.lock"
    first = _hold(path, "job A", 3600)
    assert first.stdout.readline().strip() == "held"
    assert lockfile.holder(path)["pid"] == first.pid
    second = _hold(path, "job A", 0)
    # the second waits: it says so, and does not get the lock while the first lives
    line = second.stderr.readline()
    assert f"job A is already running (process {first.pid} on " in line, line
    time.sleep(1.0)
    assert second.poll() is None and lockfile.holder(path)["pid"] == first.pid
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out.split() == ["held", "released"]
    assert f"taking over lock {path} from process {first.pid}" in err and "Traceback" not in err
    assert not path.exists()  # released
    assert not list(path.parent.glob(".*"))  # no temporary or set-aside file left


@pytest.fixture
def fast(monkeypatch):
    """Heartbeats and staleness in fractions of a second (the module's own constants, shortened)."""
    monkeypatch.setattr(lockfile, "BEAT", 0.05)
    monkeypatch.setattr(lockfile, "STALE_AFTER", 1.0)
    monkeypatch.delenv("LTH_LOCK_STALE_SECONDS", raising=False)


def _foreign(path, **fields):
    record = {"format": lockfile.FORMAT, "host": "node-elsewhere", "pid": 1, "token": "theirs", "since": 0.0}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record, **fields}))


def test_a_holder_on_another_node_is_waited_for_while_it_beats_and_taken_over_after(tmp_path, fast, capsys):
    path = tmp_path / "group.lock"
    _foreign(path)
    beating = threading.Event()
    beating.set()

    def their_heartbeat():
        while beating.is_set():
            os.utime(path)
            time.sleep(0.1)
    threading.Thread(target=their_heartbeat, daemon=True).start()
    threading.Timer(3.0, beating.clear).start()
    started = time.monotonic()
    with lockfile.exclusive(path, "group"):
        waited = time.monotonic() - started
        assert lockfile.holder(path)["pid"] == os.getpid()
    assert waited > 3.0  # not while it beat (three times the staleness limit)
    err = capsys.readouterr().err
    assert "group is already running (process 1 on node-elsewhere)" in err
    assert f"taking over lock {path} from process 1 on node-elsewhere, which is gone" in err


def test_a_held_lock_keeps_beating(tmp_path, fast):
    path = tmp_path / "beat.lock"
    with lockfile.exclusive(path, "beat"):
        first = path.stat().st_mtime_ns
        _wait_for(lambda: path.stat().st_mtime_ns != first, "a heartbeat", limit=30)


@pytest.mark.parametrize("content", ["", "{not json", json.dumps({"format": "lth-lock-99", "owner": "x"})])
def test_a_damaged_or_foreign_lock_file_is_taken_over_once_unchanged(tmp_path, fast, capsys, content):
    path = tmp_path / "odd.lock"
    path.write_text(content)
    with lockfile.exclusive(path, "odd"):
        pass
    err = capsys.readouterr().err
    assert "an unreadable lock file; it is taken over when unchanged for 1 s, or delete it" in err
    assert "taking over lock" in err and "unreadable lock file (damaged, or from another lth version)" in err


def test_an_older_lths_lock_of_a_dead_process_is_taken_over_at_once(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "old.lock"
    path.write_text(f"{dead.pid}\n")  # what the flock lock left behind
    started = time.monotonic()
    with lockfile.exclusive(path, "old"):
        pass
    assert time.monotonic() - started < lockfile.STALE_AFTER
    assert f"from process {dead.pid}" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["soon", "5"])
def test_a_bad_staleness_setting_is_one_line(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LTH_LOCK_STALE_SECONDS", value)
    with pytest.raises(LTHError, match=f"LTH_LOCK_STALE_SECONDS='{value}': give a number of seconds above 15"):
        with lockfile.exclusive(tmp_path / "x.lock", "x"):
            pass


def test_on_a_filesystem_without_hard_links_the_lock_is_created_exclusively(tmp_path, monkeypatch):
    import errno

    def no_link(*args):
        raise OSError(errno.EPERM, "hard links not supported")
    monkeypatch.setattr(os, "link", no_link)
    path = tmp_path / "nolink.lock"
    with lockfile.exclusive(path, "nolink"):
        assert lockfile.holder(path)["pid"] == os.getpid()
        assert not lockfile._create(path, "another")  # held: a second creation fails
    assert not path.exists() and not list(tmp_path.iterdir())
