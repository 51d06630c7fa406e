"""`lth`: one subcommand per stage; the workflow's rules call these (lth.cli.parser says what each
takes, lth.cli.commands what it does). A user error prints one line `lth: error: ...` and exits
with status 2, writing nothing; a preempted job (SIGTERM/SIGUSR1, lth.core.preemption) says what it
kept and exits with status 75, which the workflow's `retries` rerun.
The top of the package: it may import everything.
"""

from __future__ import annotations

import signal
import sys

from lth.core import preemption
from lth.core.errors import LTHError


def main(argv: list[str] | None = None) -> int:
    from lth.cli.parser import parser, subcommands

    p = parser()
    args, unknown = p.parse_known_args(argv)
    if unknown:  # name the subcommand's usage, not the top level's
        sub = subcommands(p)[args.command]
        sub.error(f"unrecognized arguments: {' '.join(unknown)}")
    handlers = {sig: signal.getsignal(sig) for sig in preemption.SIGNALS}  # a command may install its own
    try:
        args.func(args)
    except LTHError as exc:
        print(f"lth: error: {exc}", file=sys.stderr)
        return 2
    except preemption.Preempted as exc:
        print(f"lth: {exc}; rerun the job to resume", file=sys.stderr)
        return preemption.EXIT_STATUS
    except KeyboardInterrupt:
        print("lth: interrupted", file=sys.stderr)
        return 130
    finally:  # an in-process caller (a notebook, a test) keeps its own signal handling
        preemption.restore(handlers)
    return 0
