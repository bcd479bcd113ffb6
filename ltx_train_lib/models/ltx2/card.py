"""LTX-2.x's part of the Hub model card: the base model, the diffusers snippet, ComfyUI's LTX-2 nodes, the licence.

LoRAs and fine-tunes of LTX-2, 2.3 and 2.5 are derivatives under the LTX-2.x Community License (Lightricks/LTX-2
LICENSE.md, 2026-08-11): the card says so, as the LoRA's metadata does.
"""

from __future__ import annotations

import json

from ltx_train_lib.hub.facts import DEFAULT_HUB, BaseModelInfo, CardFacts, FamilyCardText, base_model_from_source
from ltx_train_lib.hub.folder import FULL_FILES, LORA_FILES
from ltx_train_lib.models.ltx2.versions import LICENSE_NAME, LICENSE_URL, MODEL_VERSIONS

FAMILY_NAME = "LTX-2"
TAGS = ("ltx-2", "text-to-video", "image-to-video", "text-to-audio", "audio-video")
LICENCE = "other"
LICENCE_TEXT = (
    f"The base model's weights are under the **{LICENSE_NAME}** ({LICENSE_URL}). Fine-tuned weights and LoRA "
    "adapters of LTX-2, 2.3 and 2.5 are derivatives under that license and are distributed under the same terms "
    "(free for entities below USD 10M annual revenue; read the license before use)."
)


def base_model_info(facts: CardFacts) -> BaseModelInfo:
    source = facts.base_model_source
    if not source:
        return BaseModelInfo(f"{FAMILY_NAME} (version not recorded)", "Lightricks/LTX-2", f"{DEFAULT_HUB}/Lightricks/LTX-2",
                             None, "Lightricks/LTX-2")
    version = MODEL_VERSIONS.get(source)
    if version is None:
        return base_model_from_source(source, facts.base_model_on_disk)
    return BaseModelInfo(version.name, version.main_repo, version.single_file_url, version.name.split("_")[0],
                         version.hf_repo)


def card_text(facts: CardFacts) -> FamilyCardText:
    base = base_model_info(facts)
    fps = facts.weights_metadata.get("frame_rate") or "25"
    if facts.is_lora:
        code = (
            "import torch\n"
            "from diffusers import LTX2Pipeline\n"
            "from diffusers.pipelines.ltx2.export_utils import encode_video\n\n"
            f'pipe = LTX2Pipeline.from_pretrained("{base.diffusers_repo or "Lightricks/LTX-2"}", '
            'torch_dtype=torch.bfloat16).to("cuda")\n'
            f'pipe.load_lora_weights("{facts.repo_id}", weight_name="{LORA_FILES[1]}", adapter_name="{facts.model_name}")\n'
            f"out = pipe(prompt={json.dumps(facts.prompt_example)}, width=768, height=512, num_frames=121, "
            f"frame_rate={fps})\n"
            "# out.frames[0]: the video; out.audio[0]: its sound track"
        )
        comfy = (
            f"1. Copy `{LORA_FILES[1]}` to `ComfyUI/models/loras/` (ComfyUI's `LTXAV` key names, `diffusion_model.…`).\n"
            f"2. Load {base.name} with ComfyUI's LTX-2 nodes (checkpoint loader, `LTXAVTextEncoderLoader` for Gemma, "
            "`LTXVAudioVAELoader`), add **LoraLoaderModelOnly** after the model loader, strength 1.0.\n"
            f"3. Set **LTXVConditioning**'s `frame_rate` to {fps} (the training clips' rate) and keep the audio latent "
            "(`LTXVEmptyLatentAudio`) as long as the video."
        )
    else:
        code = (
            "import torch\n"
            "from diffusers import LTX2Pipeline, LTX2VideoTransformer3DModel\n"
            f'transformer = LTX2VideoTransformer3DModel.from_single_file("{FULL_FILES[1]}", '
            f'config="{base.diffusers_repo or "Lightricks/LTX-2"}", subfolder="transformer")'
        )
        comfy = f"1. Copy `{FULL_FILES[1]}` to `ComfyUI/models/diffusion_models/` and load it with **Load Diffusion Model**."
    return FamilyCardText(family_name=FAMILY_NAME, base_model=base, tags=TAGS, usage_code=code,
                          comfyui_instructions=comfy, licence=LICENCE, licence_text=LICENCE_TEXT)
