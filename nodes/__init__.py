"""The ComfyUI face of ltx_train_lib: thin v1 nodes over the library, one module per pipeline stage.

Importing this package is cheap: no torch, diffusers or transformers (those load when a node runs), and ComfyUI's
own modules are touched only through :mod:`.comfy`.
"""

from __future__ import annotations

from .caption import QwenCaption
from .compare import CompareCheckpoints
from .dataset import LoadVideos, SplitScenes
from .export import ConvertComfy, PushToHub
from .precompute import PrecomputeLatents
from .train import TrainLoRA

PREFIX = "LTXTrainer_"

NODE_CLASS_MAPPINGS = {
    f"{PREFIX}LoadVideos": LoadVideos,
    f"{PREFIX}SplitScenes": SplitScenes,
    f"{PREFIX}QwenCaption": QwenCaption,
    f"{PREFIX}PrecomputeLatents": PrecomputeLatents,
    f"{PREFIX}TrainLoRA": TrainLoRA,
    f"{PREFIX}ConvertComfy": ConvertComfy,
    f"{PREFIX}PushToHub": PushToHub,
    f"{PREFIX}CompareCheckpoints": CompareCheckpoints,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    f"{PREFIX}LoadVideos": "Load Videos (LTX Trainer)",
    f"{PREFIX}SplitScenes": "Split Scenes (LTX Trainer)",
    f"{PREFIX}QwenCaption": "Qwen Caption (LTX Trainer)",
    f"{PREFIX}PrecomputeLatents": "Precompute Latents (LTX Trainer)",
    f"{PREFIX}TrainLoRA": "Train LoRA (LTX Trainer)",
    f"{PREFIX}ConvertComfy": "Save LoRA for ComfyUI (LTX Trainer)",
    f"{PREFIX}PushToHub": "Push to Hub (LTX Trainer)",
    f"{PREFIX}CompareCheckpoints": "Compare Checkpoints (LTX Trainer)",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
