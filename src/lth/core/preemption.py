"""Preemption: a cluster stops a job with SIGTERM (or SIGUSR1, SLURM's `--signal` warning) and a grace
period. A training loop that can write its resume checkpoint at any step polls `requested()` after
each step and stops there (raising `Preempted`); anywhere else the signal stops the job at once, as
Ctrl-C would. The command line exits with `EXIT_STATUS`, a failure the workflow's `retries` rerun,
and the rerun resumes from the checkpoint.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_STATUS = 75  # EX_TEMPFAIL (sysexits.h): try again later

_state = {"polling": 0, "signal": None}


class Preempted(BaseException):
    """The job was asked to stop by `signal_name`; `where` says what it kept (set by whoever saved). A
    BaseException, as KeyboardInterrupt is: an `except Exception` that guards a file read must not take
    it for a damaged file."""

    def __init__(self, signal_name: str, where: str = ""):
        super().__init__(signal_name, where)
        self.signal_name, self.where = signal_name, where

    def __str__(self) -> str:
        return f"preempted by {self.signal_name}" + (f": {self.where}" if self.where else "")


def _handler(signum, frame) -> None:
    name = signal.Signals(signum).name
    _state["signal"] = name
    if not _state["polling"]:
        raise Preempted(name, "stopped outside training; its last checkpoint (if any) is kept")


def install() -> dict:
    """Handle the preemption signals in this process (the main thread; `lth job`, `lth train`), no
    request pending; the handlers it replaced (for `restore`)."""
    _state["signal"] = None
    return {sig: signal.signal(sig, _handler) for sig in SIGNALS}


def restore(previous: dict) -> None:
    """The handlers `install` replaced, back (an in-process caller: tests)."""
    for sig, handler in previous.items():
        if handler is not None and signal.getsignal(sig) is not handler:  # unchanged: nothing to do (any thread)
            signal.signal(sig, handler)
    _state["signal"] = None


def requested() -> str | None:
    """The name of the preemption signal received, if one was."""
    return _state["signal"]


@contextmanager
def polling():
    """While inside, a preemption signal only marks the request: the caller polls `requested()` at
    points where it can save its state (a signal already pending stops the job at the first poll)."""
    _state["polling"] += 1
    try:
        yield
    finally:
        _state["polling"] -= 1
