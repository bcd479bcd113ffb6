#!/usr/bin/env python3
"""Caption embeddings and video latents into <dataset dir>/.precomputed (see docs/preprocessing.md).

    python scripts/preprocess_dataset.py DATASET --resolution-buckets "768x448x89;512x512x49" [options]

A thin wrapper around ``ltx_train_lib.cli.preprocess``; ``--help`` lists every option.
"""

import sys
from pathlib import Path

# Runs from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltx_train_lib.cli.preprocess import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
