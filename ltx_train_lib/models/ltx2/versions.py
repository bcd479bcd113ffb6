"""Named LTX-2.x releases: where their files live and which architecture each is.

Every release is a joint audio + video model with a Gemma text encoder (Gemma 3 12B for LTX-2 and 2.3, Lightricks'
Gemma 4 12B fine-tune for 2.5). ``size`` picks the transformer architecture shipped in ``configs/`` (so a single
file loads without network; only LTX-2 19B's, the class defaults of diffusers' LTX2VideoTransformer3DModel, is
shipped — a 2.3/2.5 single file's architecture is read off its tensors, a repository's from its config);
``TEXT_ENCODERS`` names the Gemma each release needs.
"""

from __future__ import annotations

from ltx_train_lib.models.family import ModelVersion

FAMILY = "ltx2"
LICENSE_NAME = "LTX-2.x Community License"
LICENSE_URL = "https://github.com/Lightricks/LTX-2/blob/main/LICENSE.md"

# (name, size, single file, repo, distilled)
_RELEASES = (
    ("LTX-2_19B_DEV", "19B", "ltx-2-19b-dev.safetensors", "Lightricks/LTX-2", False),
    ("LTX-2_19B_DISTILLED", "19B", "ltx-2-19b-distilled.safetensors", "Lightricks/LTX-2", True),
    ("LTX-2.3_22B_DEV", "22B-2.3", "ltx-2.3-22b-dev.safetensors", "Lightricks/LTX-2.3", False),
    ("LTX-2.3_22B_DISTILLED", "22B-2.3", "ltx-2.3-22b-distilled.safetensors", "Lightricks/LTX-2.3", True),
    ("LTX-2.5_22B_DEV", "22B-2.5", "ltx-2.5-22b-dev.safetensors", "Lightricks/LTX-2.5", False),
    ("LTX-2.5_22B_DISTILLED", "22B-2.5", "ltx-2.5-22b-distilled.safetensors", "Lightricks/LTX-2.5", True),
)

MODEL_VERSIONS: dict[str, ModelVersion] = {
    name: ModelVersion(name=name, family=FAMILY, size=size, single_file=file, hf_repo=repo, distilled=distilled,
                       main_repo=repo)
    for name, size, file, repo, distilled in _RELEASES
}

# The text encoder each architecture was trained with. Gemma 4 stock weights are refused (Lightricks' tools refuse
# them too: 2.5 was trained on their fine-tune, whose projection stock Gemma 4 lacks).
TEXT_ENCODERS = {"19B": "gemma-3-12b", "22B-2.3": "gemma-3-12b", "22B-2.5": "gemma4-12b-ltx-v1"}
