"""Run with ComfyUI's Python (COMFYUI_PATH set): does a ``_comfy`` LTX-2 LoRA load into ComfyUI's own LTXAV model?

Builds ComfyUI's ``comfy.model_base.LTXAV`` (``comfy/ldm/lightricks/av_model.py``) with the dimensions of the
transformer config given, maps the LoRA with ComfyUI's own key map (``comfy.lora.model_lora_keys_unet``) and loader
(``comfy.lora.load_lora``, which logs "lora key not loaded" for every key it cannot place), and prints one JSON
line: keys in the file, keys loaded, keys not loaded, patched weights that do not exist in the model.

usage: COMFYUI_PATH=... $COMFYUI_PYTHON tests/comfyui_ltx2_keys.py LORA_COMFY.safetensors TRANSFORMER_CONFIG.json
"""

from __future__ import annotations

import json
import logging
import os
import sys


def main(lora_path: str, config_path: str) -> int:
    sys.path.insert(0, os.environ["COMFYUI_PATH"])
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()  # so --cpu is read, as ComfyUI's main.py does
    import comfy.lora
    import comfy.model_base
    import comfy.supported_models
    import comfy.utils

    dc = json.load(open(config_path))
    unet_config = dict(
        image_model="ltxav", num_layers=dc["num_layers"], in_channels=dc["in_channels"],
        audio_in_channels=dc["audio_in_channels"], cross_attention_dim=dc["cross_attention_dim"],
        audio_cross_attention_dim=dc["audio_cross_attention_dim"], caption_channels=dc["caption_channels"],
        num_attention_heads=dc["num_attention_heads"], attention_head_dim=dc["attention_head_dim"],
        audio_num_attention_heads=dc["audio_num_attention_heads"], audio_attention_head_dim=dc["audio_attention_head_dim"],
        # ComfyUI's LTXAV holds the text connectors; tiny sizes (they take no LoRA here).
        connector_num_attention_heads=4, connector_attention_head_dim=8, connector_num_layers=1,
    )
    model_config = comfy.supported_models.LTXAV(unet_config)
    model = comfy.model_base.LTXAV(model_config, device="cpu")
    weights = set(model.state_dict().keys())
    lora = comfy.utils.load_torch_file(lora_path, safe_load=True)
    not_loaded: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("lora key not loaded: "):
                not_loaded.append(msg.split(": ", 1)[1])

    logging.getLogger().addHandler(Catch())
    key_map = comfy.lora.model_lora_keys_unet(model, {})
    patches = comfy.lora.load_lora(lora, key_map)
    targets = [k if isinstance(k, str) else k[0] for k in patches]
    print(json.dumps({
        "model_class": type(model.diffusion_model).__name__,
        "file_keys": len(lora),
        "patched_weights": len(targets),
        "not_loaded": not_loaded,
        "missing_in_model": sorted(t for t in targets if t not in weights),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
