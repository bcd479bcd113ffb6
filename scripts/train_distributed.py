#!/usr/bin/env python
"""Train on several processes/GPUs/machines: `python scripts/train_distributed.py CONFIG [--num_processes N]`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltx_train_lib.cli.train_distributed import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
