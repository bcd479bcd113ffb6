"""ComfyUI-LTX-Trainer: train LTX-Video LoRAs from raw videos inside ComfyUI.

ComfyUI imports this file by path as a package (``spec_from_file_location``), so the pack's own modules are imported
relatively, and the library ``ltx_train_lib`` (next to this file) is made importable when it is not installed.
Importing the pack loads no torch, diffusers or transformers; the nodes load them when they run.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
if importlib.util.find_spec("ltx_train_lib") is None:
    # Appended, not prepended: ComfyUI's own top-level modules (nodes, server, ...) must keep winning.
    sys.path.append(_PACK_DIR)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = "./web"

try:
    # The training monitor's HTTP routes (registers itself on ComfyUI's PromptServer; a no-op elsewhere).
    from .nodes import routes as _routes  # noqa: E402, F401
except Exception as exc:  # noqa: BLE001 - the nodes work without the monitor panel
    logging.getLogger("ltx_trainer").warning("LTX Trainer: the monitor panel's routes are not available: %s", exc)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
