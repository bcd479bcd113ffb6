"""``python -m ltx_train_lib.jobs supervise -- COMMAND [ARGS...]``: the supervisor of a job (see :mod:`.supervise`)."""

import sys

from ltx_train_lib.jobs.supervise import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
