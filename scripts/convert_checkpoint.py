#!/usr/bin/env python
"""Thin wrapper: see ltx_train_lib/cli/convert.py (`python scripts/convert_checkpoint.py --help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ltx_train_lib.cli.convert import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
