#!/usr/bin/env python3
"""IC-LoRA reference videos (Canny edges) for the clips of a caption file (see docs/ic_lora.md).

    python scripts/compute_condition.py CAPTIONS.json [--override] [--batch-size 100]
    python scripts/compute_condition.py DATASET_DIR --output DATASET_DIR/captions.json

A thin wrapper around ``ltx_train_lib.cli.compute_condition``; ``--help`` lists every option.
"""

import sys
from pathlib import Path

# Runs from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltx_train_lib.cli.compute_condition import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
