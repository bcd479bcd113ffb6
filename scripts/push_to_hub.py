#!/usr/bin/env python
"""Thin wrapper: see ltx_train_lib/cli/hub.py (`python scripts/push_to_hub.py --help`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ltx_train_lib.cli.hub import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
