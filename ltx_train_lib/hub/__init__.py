"""Publishing a finished run on the Hugging Face Hub, one module per subject:

- ``folder``: what the output folder holds (weights files, safetensors header, training config)
- ``samples``: the last validation round's videos and their GIFs
- ``facts``: ``CardFacts``, everything the model card says, collected once by ``collect_card_facts``
- ``card``: ``render_model_card(facts)``, facts -> README.md through templates/model_card.md
- the model family's part of the card (diffusers snippet, ComfyUI steps, base model, licence) comes from
  ``ModelFamily.card_text`` (LTX-Video: ``ltx_train_lib/models/ltxv/card.py``)
- ``upload``: token, repo id checks, Hub error messages, ``push_to_hub``

The names below are the package's public surface (what ``ltx_train_lib.hub`` offered as a single module).
"""

from ltx_train_lib.hub.card import family_card_text, render_model_card
from ltx_train_lib.hub.errors import HubError
from ltx_train_lib.hub.facts import (
    DEFAULT_HUB,
    BaseModelInfo,
    CardFacts,
    CardSample,
    FamilyCardText,
    card_facts_from_parts,
    collect_card_facts,
)
from ltx_train_lib.hub.folder import CONFIG_FILE, FULL_FILES, LORA_FILES, find_weight_files
from ltx_train_lib.hub.samples import (
    GIF_MAX_FPS,
    GIF_MAX_SIDE,
    HUB_SAMPLES_DIR,
    PROMPTS_FILE,
    SAMPLE_NAME,
    SAMPLES_DIR,
    Sample,
    last_validation_samples,
    video_to_gif,
)
from ltx_train_lib.hub.upload import push_to_hub, resolve_token

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_HUB",
    "FULL_FILES",
    "GIF_MAX_FPS",
    "GIF_MAX_SIDE",
    "HUB_SAMPLES_DIR",
    "LORA_FILES",
    "PROMPTS_FILE",
    "SAMPLES_DIR",
    "SAMPLE_NAME",
    "BaseModelInfo",
    "CardFacts",
    "CardSample",
    "FamilyCardText",
    "HubError",
    "Sample",
    "card_facts_from_parts",
    "collect_card_facts",
    "family_card_text",
    "find_weight_files",
    "last_validation_samples",
    "push_to_hub",
    "render_model_card",
    "resolve_token",
    "video_to_gif",
]
