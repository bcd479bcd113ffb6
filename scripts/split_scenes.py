#!/usr/bin/env python
"""Split videos into scene clips: see `python scripts/split_scenes.py --help` and docs/scenes.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ltx_train_lib.cli.split_scenes import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
