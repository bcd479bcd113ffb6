#!/usr/bin/env python
"""Train an LTX-Video LoRA or full fine-tune: `python scripts/train.py CONFIG.yaml`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ltx_train_lib.cli.train import train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_main())
