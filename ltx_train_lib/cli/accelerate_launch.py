"""`python -m ltx_train_lib.cli.accelerate_launch ARGS...`: ``accelerate launch ARGS...`` that ends like our CLIs.

``accelerate launch`` re-raises a failed training process as a Python traceback of its own (torch elastic's
``ChildFailedError``, or ``CalledProcessError`` for one process) and exits 1. Here the trainer's own ``error: ...``
line (already printed by the failed rank) stays the last word: the launcher exits with the exit code of the rank
that failed first (2 for a reported error, 3 for a stop) and adds one line naming it, without a traceback.
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = launch_command_parser().parse_args(argv)
    try:
        launch_command(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        how = f"exit code {code}" if code >= 0 else f"signal {-code}"
        print(f"error: training process rank {rank} (pid {failure.pid}) ended first, with {how}; its own message "
              "is above", file=sys.stderr)
        return code if code > 0 else 1
    except subprocess.CalledProcessError as exc:  # one process (accelerate's simple launcher): it said why itself
        return exc.returncode if exc.returncode > 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
