#!/usr/bin/env python
"""Caption videos and images with Qwen2.5-VL: see `python scripts/caption_videos.py --help` and docs/captioning.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ltx_train_lib.cli.caption import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
