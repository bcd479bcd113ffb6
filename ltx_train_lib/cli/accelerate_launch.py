"""`python -m ltx_train_lib.cli.accelerate_launch ARGS...`: ``accelerate launch ARGS...`` that ends like our CLIs.

``accelerate launch`` re-raises a failed training process as a Python traceback of its own (torch elastic's
``ChildFailedError``, or ``CalledProcessError`` for one process) and exits 1. Here the trainer's own ``error: ...``
line (already printed by the failed rank) stays the last word: the launcher exits with the exit code of the rank
that failed first (2 for a reported error, 3 for a stop) and adds one line naming the failed ranks, without a
traceback.
"""

from __future__ import annotations

import subprocess
import sys


def _how(code: int) -> str:
    return f"with exit code {code}" if code >= 0 else f"by signal {-code}"


def main(argv: list[str] | None = None) -> int:
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = launch_command_parser().parse_args(argv)
    try:
        launch_command(args)
    except ChildFailedError as exc:
        # Which failed first is not reliable (the agent notices exits in rounds), so every failed rank is named.
        failed = sorted(exc.failures.items())
        named = ", ".join(f"rank {rank} (pid {f.pid}) {_how(f.exitcode)}" for rank, f in failed)
        print(f"error: training process(es) ended: {named}; their own messages are above", file=sys.stderr)
        _, first = exc.get_first_failure()
        codes = [first.exitcode, *(f.exitcode for _, f in failed)]
        return next((c for c in codes if c > 0), 1)
    except subprocess.CalledProcessError as exc:  # one process (accelerate's simple launcher): it said why itself
        return exc.returncode if exc.returncode > 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
