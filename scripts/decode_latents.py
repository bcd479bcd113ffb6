#!/usr/bin/env python3
"""Decode precomputed latents to mp4/png to check them by eye (the reference trainer's script).

    python scripts/decode_latents.py DATASET/.precomputed/latents decoded/ [--model-source ...] [--vae-tiling]

A thin wrapper around ``ltx_train_lib.cli.decode_latents``; ``--help`` lists every option.
"""

import sys
from pathlib import Path

# Runs from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltx_train_lib.cli.decode_latents import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
