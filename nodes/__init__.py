"""The ComfyUI face of ltx_train_lib: thin v1 nodes over the library, one module per pipeline stage.

Importing this package is cheap: no torch, diffusers or transformers (those load when a node runs), and ComfyUI's
own modules are touched only through :mod:`.comfy`.
"""

from __future__ import annotations

from .caption import QwenCaption
from .compare import CompareCheckpoints
from .dataset import LoadVideos, SplitScenes
from .export import ConvertComfy, PushToHub
from .precompute import PrecomputeLatents, PrecomputeLatentsAllSettings, PrecomputeOptions
from .train import TrainingOptions, TrainLoRA, TrainLoRAAllSettings

PREFIX = "LTXTrainer_"

NODE_CLASS_MAPPINGS = {
    f"{PREFIX}LoadVideos": LoadVideos,
    f"{PREFIX}SplitScenes": SplitScenes,
    f"{PREFIX}QwenCaption": QwenCaption,
    f"{PREFIX}PrecomputeLatents_v2": PrecomputeLatents,
    f"{PREFIX}PrecomputeOptions": PrecomputeOptions,
    f"{PREFIX}TrainLoRA_v2": TrainLoRA,
    f"{PREFIX}TrainingOptions": TrainingOptions,
    f"{PREFIX}ConvertComfy": ConvertComfy,
    f"{PREFIX}PushToHub": PushToHub,
    f"{PREFIX}CompareCheckpoints": CompareCheckpoints,
    # The first release's all-settings nodes (DEPRECATED: hidden from search), so saved workflows keep working:
    # their widget values are stored by position and would not fit the compact nodes.
    f"{PREFIX}PrecomputeLatents": PrecomputeLatentsAllSettings,
    f"{PREFIX}TrainLoRA": TrainLoRAAllSettings,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    f"{PREFIX}LoadVideos": "Load Videos (LTX Trainer)",
    f"{PREFIX}SplitScenes": "Split Scenes (LTX Trainer)",
    f"{PREFIX}QwenCaption": "Qwen Caption (LTX Trainer)",
    f"{PREFIX}PrecomputeLatents_v2": "Precompute Latents (LTX Trainer)",
    f"{PREFIX}PrecomputeOptions": "Precompute Options (LTX Trainer)",
    f"{PREFIX}TrainLoRA_v2": "Train LoRA (LTX Trainer)",
    f"{PREFIX}TrainingOptions": "Training Options (LTX Trainer)",
    f"{PREFIX}ConvertComfy": "Save LoRA for ComfyUI (LTX Trainer)",
    f"{PREFIX}PushToHub": "Push to Hub (LTX Trainer)",
    f"{PREFIX}CompareCheckpoints": "Compare Checkpoints (LTX Trainer)",
    f"{PREFIX}PrecomputeLatents": "Precompute Latents, all settings (LTX Trainer, legacy)",
    f"{PREFIX}TrainLoRA": "Train LoRA, all settings (LTX Trainer, legacy)",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
