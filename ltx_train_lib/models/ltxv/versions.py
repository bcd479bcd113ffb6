"""Named LTX-Video (0.9.x) releases and where their files are."""

from __future__ import annotations

from ltx_train_lib.models.family import ModelVersion

FAMILY = "ltxv"
HF_MAIN_REPO = "Lightricks/LTX-Video"
# The VAE shared by 0.9.5+ releases, in diffusers layout (the reference loads it the same way).
VAE_REPO_095 = "Lightricks/LTX-Video-0.9.5"
OLD_VAE_VERSIONS = ("LTXV_2B_0.9.0", "LTXV_2B_0.9.1")  # releases whose VAE is their own repository's
# Releases whose single file does not set ``causal_temporal_positioning`` in its ``config`` metadata: those before
# 0.9.5. ComfyUI added the flag (and the metadata read) with 0.9.5 support (commit 93fedd92, "Support LTXV 0.9.5";
# ``latent_to_pixel_coords``: "Default = False for backwards compatibility"); every later release's file sets it.
# Used only when the release's single file is not on disk to read (e.g. it loads from its diffusers repository).
NON_CAUSAL_VERSIONS = ("LTXV_2B_0.9.0", "LTXV_2B_0.9.1")


def _v(name: str, size: str, single_file: str, hf_repo: str | None, distilled: bool = False) -> ModelVersion:
    return ModelVersion(name, FAMILY, size, single_file, hf_repo, distilled, main_repo=HF_MAIN_REPO)


_VERSIONS = [
    _v("LTXV_2B_0.9.0", "2B", "ltx-video-2b-v0.9.safetensors", "Lightricks/LTX-Video"),
    _v("LTXV_2B_0.9.1", "2B", "ltx-video-2b-v0.9.1.safetensors", "Lightricks/LTX-Video-0.9.1"),
    _v("LTXV_2B_0.9.5", "2B", "ltx-video-2b-v0.9.5.safetensors", "Lightricks/LTX-Video-0.9.5"),
    _v("LTXV_2B_0.9.6_DEV", "2B", "ltxv-2b-0.9.6-dev-04-25.safetensors", None),
    _v("LTXV_2B_0.9.6_DISTILLED", "2B", "ltxv-2b-0.9.6-distilled-04-25.safetensors", None, distilled=True),
    _v("LTXV_2B_0.9.8_DISTILLED", "2B", "ltxv-2b-0.9.8-distilled.safetensors", None, distilled=True),
    _v("LTXV_13B_097_DEV", "13B", "ltxv-13b-0.9.7-dev.safetensors", "Lightricks/LTX-Video-0.9.7-dev"),
    _v("LTXV_13B_097_DISTILLED", "13B", "ltxv-13b-0.9.7-distilled.safetensors", "Lightricks/LTX-Video-0.9.7-distilled", distilled=True),
    _v("LTXV_13B_098_DEV", "13B", "ltxv-13b-0.9.8-dev.safetensors", None),
    _v("LTXV_13B_098_DISTILLED", "13B", "ltxv-13b-0.9.8-distilled.safetensors", None, distilled=True),
]
MODEL_VERSIONS: dict[str, ModelVersion] = {v.name: v for v in _VERSIONS}
