"""LTX-Video 0.9.x's part of the Hub model card: its base model, the diffusers snippet, the ComfyUI steps, the licence.

Reached through ``LtxvFamily.card_text(facts)``; the hub's card code names no LTX class, repository or ComfyUI node.
"""

from __future__ import annotations

import json
import re

from ltx_train_lib.hub.facts import DEFAULT_HUB, BaseModelInfo, CardFacts, FamilyCardText, base_model_from_source
from ltx_train_lib.hub.folder import FULL_FILES, LORA_FILES

FAMILY_NAME = "LTX-Video"
TAGS = ("ltx-video", "text-to-video", "image-to-video")
# LTX-Video's open-weights licence has no Hub licence id; the card points readers to the base model's terms.
LICENCE = "other"


def card_text(facts: CardFacts) -> FamilyCardText:
    """The LTX-Video text of the card for ``facts``."""
    base = base_model_info(facts)
    return FamilyCardText(
        family_name=FAMILY_NAME,
        base_model=base,
        tags=TAGS,
        usage_code=_diffusers_code(facts, base),
        comfyui_instructions=_comfyui_instructions(facts, base),
        licence=LICENCE,
        licence_text=(
            f"This model inherits the license of its base model ({base.name}); check the base model's license "
            "before use."
        ),
    )


def base_model_info(facts: CardFacts) -> BaseModelInfo:
    """A named version (LTXV_2B_0.9.6_DEV ...) from the registry; a repo id or path as given; nothing recorded ->
    the main LTX-Video repository, since every run of this family starts from one of its checkpoints."""
    from ltx_train_lib.models.ltxv.versions import HF_MAIN_REPO, MODEL_VERSIONS

    source = facts.base_model_source
    if not source:
        return BaseModelInfo(
            f"{FAMILY_NAME} (version not recorded)", HF_MAIN_REPO, f"{DEFAULT_HUB}/{HF_MAIN_REPO}", None, HF_MAIN_REPO
        )
    version = MODEL_VERSIONS.get(source)
    if version is None:
        return base_model_from_source(source, facts.base_model_on_disk)
    number = re.search(r"\d+\.\d+(?:\.\d+)?|0\d\d", version.name)
    pretty = number.group(0) if number else None
    if pretty and "." not in pretty:  # "097" -> "0.9.7"
        pretty = ".".join(pretty)
    return BaseModelInfo(
        f"{FAMILY_NAME} {version.size} {pretty or ''} ({version.name})".replace("  ", " "),
        HF_MAIN_REPO,
        version.single_file_url,
        pretty,
        version.hf_repo,
    )


def training_frame_rate(facts: CardFacts) -> tuple[str | None, dict[str, int]]:
    """The fps the weights were trained at (the header's ``frame_rate``) and, when the clips had several, the
    count per fps (``frame_rates``)."""
    meta = facts.weights_metadata
    fps = meta.get("frame_rate") or None
    try:
        several = json.loads(meta.get("frame_rates") or "{}")
    except json.JSONDecodeError:
        several = {}
    return fps, several if isinstance(several, dict) else {}


def _frame_rate_step(facts: CardFacts) -> str:
    fps, several = training_frame_rate(facts)
    if not fps:
        return (
            "Set **LTXVConditioning**'s `frame_rate` to the frame rate of the training clips (ComfyUI assumes 25 "
            "fps without it; this file does not record the training fps)."
        )
    text = (
        f"Sample at {fps} fps: set **LTXVConditioning**'s `frame_rate` to {fps} (ComfyUI assumes 25 fps without "
        "it, which moves every frame's time position) and save the video at the same rate."
    )
    if len(several) > 1:
        mix = ", ".join(f"{n} at {rate} fps" for rate, n in several.items())
        text += f" The training clips had several frame rates ({mix}); {fps} fps is the most common."
    return text


def _comfyui_instructions(facts: CardFacts, base: BaseModelInfo) -> str:
    if facts.is_lora:
        return (
            f"1. Download `{LORA_FILES[1]}` and copy it to `ComfyUI/models/loras/`.\n"
            f"2. Load the {FAMILY_NAME} base model ({base.name}) as usual (e.g. *Load Checkpoint* for the single-file "
            "checkpoint).\n"
            "3. Add a **LoraLoaderModelOnly** node between the model loader and the sampler, select the file, "
            "strength 1.0.\n"
            "4. The file uses ComfyUI's key names (`diffusion_model.…`, alpha stored per layer); "
            f"`{LORA_FILES[0]}` is the diffusers version and does not load in ComfyUI.\n"
            f"5. {_frame_rate_step(facts)}"
        )
    return (
        f"1. Copy `{FULL_FILES[1]}` to `ComfyUI/models/diffusion_models/` and load it with "
        f"**Load Diffusion Model**; load the {FAMILY_NAME} VAE and T5 text encoder as for the base model. Its "
        "header's `config` states the architecture and the base's `causal_temporal_positioning`; ComfyUI reads it "
        "there from version 0.3.68 on (older versions' *Load Diffusion Model* ignores it and only loads the 2B/13B "
        "sizes, with causal positioning off).\n"
        f"2. {_frame_rate_step(facts)}"
    )


def _diffusers_code(facts: CardFacts, base: BaseModelInfo) -> str:
    from ltx_train_lib.models.ltxv.versions import HF_MAIN_REPO

    pipe_repo = base.diffusers_repo or HF_MAIN_REPO
    fps = training_frame_rate(facts)[0] or "24"  # the training clips' rate when recorded
    if facts.is_lora:
        code = (
            "import torch\n"
            "from diffusers import LTXPipeline\n"
            "from diffusers.utils import export_to_video\n\n"
            f'pipe = LTXPipeline.from_pretrained("{pipe_repo}", torch_dtype=torch.bfloat16).to("cuda")\n'
            f'pipe.load_lora_weights("{facts.repo_id}", weight_name="{LORA_FILES[0]}",'
            f' adapter_name="{facts.model_name}")\n'
            f"video = pipe(prompt={json.dumps(facts.prompt_example)}, width=768, height=512, num_frames=121, "
            f"frame_rate={fps})"
            ".frames[0]\n"
            f'export_to_video(video, "output.mp4", fps={fps})'
        )
    else:
        code = (
            "import torch\n"
            "from diffusers import LTXPipeline, LTXVideoTransformer3DModel\n"
            "from huggingface_hub import hf_hub_download\n"
            "from safetensors.torch import load_file\n\n"
            f'transformer = LTXVideoTransformer3DModel.from_pretrained("{pipe_repo}", subfolder="transformer")\n'
            f'transformer.load_state_dict(load_file(hf_hub_download("{facts.repo_id}", "{FULL_FILES[0]}")))\n'
            f'pipe = LTXPipeline.from_pretrained("{pipe_repo}", transformer=transformer.to(torch.bfloat16), '
            'torch_dtype=torch.bfloat16).to("cuda")'
        )
    if base.diffusers_repo is None:
        code = (
            f"# {base.name} has no diffusers-format repository; load it with from_single_file or a converted copy.\n"
            + code
        )
    return code
