#!/usr/bin/env python
"""Raw videos to a ComfyUI LoRA: `python scripts/run_pipeline.py BASENAME --resolution-buckets WxHxF
--config-template configs/ltxv_2b_lora_template.yaml --rank 32`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltx_train_lib.cli.pipeline import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
