"""LTX-2 components from single ``.safetensors`` files, as ComfyUI users keep them (see :mod:`.component_keys` for
which file holds what under which names).

Everything is decided from the file's header (tensor names, shapes, metadata), never by reading a weight:

* what a file holds (:func:`inspect_file`), so a VAE given where a transformer is expected, or a Gemma file without
  a tokenizer, is refused with a message naming the file and what to do;
* the release (:func:`detect_release`): LTX-2.3+ has per-modality text projections, gated attention and prompt
  modulation; 2.5 a video FFN without bias and a keyframe embedding;
* each component's architecture: the diffusers config our own exports embed (metadata ``diffusers_configs``), else the
  LTX-2 19B / Gemma 3 12B configs shipped in ``configs/`` (no network) after checking every tensor shape against them.
  Components of LTX-2.3/2.5 (rebuilt VAE, BWE vocoder, larger connectors) have no shipped config: their files are
  refused with a message pointing at a diffusers folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import ModelLoadError
from ltx_train_lib.models.ltx2 import component_keys as keys

log = logging.getLogger("ltx_train_lib.models.ltx2")
CONFIG_DIR = Path(__file__).parent / "configs"
CONFIGS_METADATA = "diffusers_configs"  # JSON {component: diffusers/transformers config}, written by our exports
GEMMA_TOKENIZER_TENSOR = "spiece_model"  # ComfyUI's Gemma 3 files carry the SentencePiece model as a uint8 tensor
GEMMA_HUB_ID = "google/gemma-3-12b-it"
COMPONENT_NAMES = {
    "transformer": "an LTX-2 transformer",
    "connectors": "the LTX-2 text connectors",
    "vae": "an LTX-2 video VAE",
    "audio_vae": "an LTX-2 audio VAE",
    "vocoder": "an LTX-2 vocoder",
    "gemma3": "a Gemma 3 text encoder",
    "gemma4": "a Gemma 4 text encoder",
}


@dataclass
class FileContents:
    """What one safetensors file holds: component -> the prefix its tensors sit under ('' = none)."""

    path: Path
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str]
    components: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(COMPONENT_NAMES[c] for c in self.components) or "no LTX-2 component"

    def tensors_under(self, prefix: str) -> list[str]:
        return [k for k in self.shapes if k.startswith(prefix)]

    def embedded_config(self, component: str) -> dict[str, Any] | None:
        raw = self.metadata.get(CONFIGS_METADATA)
        return (json.loads(raw).get(component) if raw else None) or None


def read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}, dict(fh.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a damaged file
        raise ModelLoadError(f"'{path}' is not a readable .safetensors file ({type(exc).__name__}: {exc}); check the "
                             "path, or download the file again") from exc


def _has(shapes: Mapping[str, Any], *names: str) -> bool:
    return any(n in shapes for n in names)


def inspect_file(path: str | Path) -> FileContents:
    """Which LTX-2 components a file holds, from its header alone."""
    path = Path(path)
    shapes, metadata = read_header(path)
    found = FileContents(path, shapes, metadata)
    comps = found.components
    for prefix in (keys.TRANSFORMER_PREFIX, "diffusion_model.", ""):
        if _has(shapes, prefix + "patchify_proj.weight", prefix + "proj_in.weight") and _has(
            shapes, prefix + "audio_patchify_proj.weight", prefix + "audio_proj_in.weight"
        ):
            comps["transformer"] = prefix
            break
    for prefix in (keys.TRANSFORMER_PREFIX, "diffusion_model.", ""):
        if found.tensors_under(prefix + "video_embeddings_connector."):
            comps["connectors"] = prefix
            break
    if any(k.startswith(keys.VOCODER_PREFIX) for k in shapes):
        comps["vocoder"] = keys.VOCODER_PREFIX
    if any(k.startswith(keys.AUDIO_VAE_PREFIX + "encoder.") or k.startswith(keys.AUDIO_VAE_PREFIX + "decoder.")
           for k in shapes):
        comps["audio_vae"] = keys.AUDIO_VAE_PREFIX
    for prefix in (keys.VAE_PREFIX, ""):
        if _has(shapes, prefix + "decoder.conv_in.conv.weight") and _has(shapes, prefix + "encoder.conv_in.conv.weight"):
            if not (prefix == "" and "audio_vae" in comps and not _has(shapes, "per_channel_statistics.mean-of-means")):
                comps["vae"] = prefix
                break
    gemma = _gemma_kind(shapes, metadata)
    if gemma:
        comps[gemma] = ""
    return found


def _gemma_kind(shapes: Mapping[str, Any], metadata: Mapping[str, str]) -> str | None:
    """'gemma3' / 'gemma4' for a Gemma text encoder file (any of ComfyUI's or transformers' layouts), else None."""
    from ltx_train_lib.models.ltx2.component_keys import gemma_language_model

    language = gemma_language_model(dict.fromkeys(k for k in shapes if "layers." in k or "embed_tokens" in k))
    if "embed_tokens.weight" not in language or "layers.0.post_feedforward_layernorm.weight" not in language:
        return None
    layers = {int(k.split(".")[1]) for k in language if k.startswith("layers.")}
    embedded = json.loads(metadata[CONFIGS_METADATA]).get("text_encoder") or {} if CONFIGS_METADATA in metadata else {}
    declared = f"{metadata.get('model_type', '')} {embedded.get('model_type', '')}"
    # Gemma 4 12B: the global layers share K and V (no v_proj there); its files carry a tokenizer.json tensor.
    if "gemma4" in declared or "tokenizer_json" in shapes or any(
        f"layers.{i}.self_attn.v_proj.weight" not in language for i in layers
    ):
        return "gemma4"
    return "gemma3"


# --------------------------------------------------------------------------------------------- release detection
def detect_release(contents: FileContents) -> str | None:
    """'2.0', '2.3' or '2.5' from the tensors a file holds (None when nothing in it tells)."""
    shapes = contents.shapes
    t = contents.components.get("transformer")
    if t is not None:
        block0 = t + "transformer_blocks.0."
        if f"{t}keyframes_abs_pos_embedding" in shapes or (
            block0 + "ff.net.0.proj.weight" in shapes and block0 + "ff.net.0.proj.bias" not in shapes
        ):
            return "2.5"
        if block0 + "attn1.to_gate_logits.weight" in shapes or any(
            k.startswith((t + "prompt_adaln_single.", t + "prompt_adaln.")) for k in shapes
        ):
            return "2.3"
        return "2.0"
    if _has(shapes, keys.PROJECTION_PREFIX + "video_aggregate_embed.weight"):
        return "2.3"
    if _has(shapes, keys.PROJECTION_PREFIX + "aggregate_embed.weight"):
        return "2.0"
    if any(k.startswith(keys.VOCODER_PREFIX + "vocoder.") or ".bwe" in k or "bwe_" in k for k in shapes):
        return "2.3"
    return None


# --------------------------------------------------------------------------------------------- configs and checks
def shipped_config(name: str) -> dict[str, Any]:
    path = CONFIG_DIR / f"{name}.json"
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def _meta_state_shapes(cls: Any, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    import torch

    with torch.device("meta"):
        model = cls(**config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_shapes(expected: Mapping[str, tuple[int, ...]], got: Mapping[str, Sequence[int]], *, what: str,
                 where: str, hint: str) -> None:
    """Refuse a file whose converted tensors are not exactly the architecture's (names and shapes)."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if tuple(expected[k]) != tuple(got[k]))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {tuple(got[k])} in the file, {tuple(expected[k])} "
                         "expected)")
        raise ModelLoadError(f"the {what} in '{where}' does not match the architecture it was loaded as: "
                             f"{'; '.join(parts)}. {hint}")


def _load_module(cls: Any, config: Mapping[str, Any], state: Mapping[str, Any], dtype, *, what: str, where: str,
                 hint: str):
    """Build ``cls(**config)`` without allocating weights, check the converted state dict, and assign it."""
    from accelerate import init_empty_weights

    expected = _meta_state_shapes(cls, config)
    check_shapes(expected, {k: tuple(v.shape) for k, v in state.items()}, what=what, where=where, hint=hint)
    with init_empty_weights():  # parameters on meta, buffers (RoPE tables, windows) real: nothing allocated twice
        model = cls(**config)
    model.load_state_dict(dict(state), strict=True, assign=True)
    model.eval()
    return model.to(dtype) if dtype is not None else model


def _read(path: Path, names: Sequence[str]) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in names}


def _config(contents: FileContents, component: str, shipped: str) -> tuple[dict[str, Any], str]:
    embedded = contents.embedded_config(component)
    if embedded:
        return embedded, "the config embedded in the file"
    return shipped_config(shipped), f"the shipped LTX-2 19B config (configs/{shipped}.json)"


_NEWER_HINT = ("Files of LTX-2.3/2.5 (rebuilt VAE, BWE vocoder, larger connectors) have no config shipped with this "
               "package: point model.vae_path / model.model_source at the release's diffusers folder instead")


def _need(contents: FileContents, component: str, field_name: str) -> str:
    if component not in contents.components:
        raise ModelLoadError(
            f"{field_name}: '{contents.path}' holds {contents.describe()}, not {COMPONENT_NAMES[component]}; give the "
            f"file that has it (ComfyUI keeps LTX-2's video and audio VAE in models/vae, Gemma in "
            "models/text_encoders, the transformer in models/checkpoints or models/diffusion_models)"
        )
    return contents.components[component]


# --------------------------------------------------------------------------------------------- components
def load_video_vae(contents: FileContents, dtype, field_name: str = "model.vae_path"):
    from diffusers import AutoencoderKLLTX2Video

    prefix = _need(contents, "vae", field_name)
    names = [k for k in contents.shapes if k.startswith(prefix) and (prefix or k.split(".")[0] in (
        "encoder", "decoder", "per_channel_statistics"))]
    state = keys.video_vae_to_diffusers(keys.select(_read(contents.path, names), prefix))
    config, origin = _config(contents, "vae", "vae_19b")
    return _load_module(AutoencoderKLLTX2Video, config, state, dtype, what="video VAE", where=str(contents.path),
                        hint=f"It was checked against {origin}. {_NEWER_HINT}")


def load_audio_vae(contents: FileContents, dtype, field_name: str = "model.vae_path"):
    from diffusers import AutoencoderKLLTX2Audio

    prefix = _need(contents, "audio_vae", field_name)
    state = keys.audio_vae_to_diffusers(keys.select(_read(contents.path, contents.tensors_under(prefix)), prefix))
    config, origin = _config(contents, "audio_vae", "audio_vae_19b")
    return _load_module(AutoencoderKLLTX2Audio, config, state, dtype, what="audio VAE", where=str(contents.path),
                        hint=f"It was checked against {origin}. {_NEWER_HINT}")


def load_vocoder(contents: FileContents, dtype, field_name: str = "model.vae_path"):
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    prefix = _need(contents, "vocoder", field_name)
    if detect_release(FileContents(contents.path, {k: v for k, v in contents.shapes.items() if k.startswith(prefix)},
                                   {})) == "2.3":
        raise ModelLoadError(f"{field_name}: '{contents.path}' holds an LTX-2.3+ vocoder with bandwidth extension; "
                             f"single files of it are not supported yet. {_NEWER_HINT}")
    state = keys.vocoder_to_diffusers(keys.select(_read(contents.path, contents.tensors_under(prefix)), prefix))
    config, origin = _config(contents, "vocoder", "vocoder_19b")
    return _load_module(LTX2Vocoder, config, state, dtype, what="vocoder", where=str(contents.path),
                        hint=f"It was checked against {origin}. {_NEWER_HINT}")


def load_connectors(contents: FileContents, dtype, projection_from: FileContents | None = None):
    """The text connectors of a checkpoint (under the transformer prefix) with the text projection (top-level in
    the checkpoint, or in the text encoder file as LTX-2.5's Gemma files carry it)."""
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    prefix = _need(contents, "connectors", "model.model_source")
    names = [k for k in contents.shapes if k.startswith(tuple(prefix + m for m in keys.CONNECTOR_MODULES))]
    projection_file = contents
    if not contents.tensors_under(keys.PROJECTION_PREFIX) and projection_from is not None:
        projection_file = projection_from
    projection_names = projection_file.tensors_under(keys.PROJECTION_PREFIX)
    if not projection_names:
        raise ModelLoadError(
            f"model.model_source: '{contents.path}' has the text connectors but no text projection "
            "(text_embedding_projection.*), nor has the text encoder file; use the full LTX-2 checkpoint "
            "(models/checkpoints/ltx-2-19b-dev.safetensors) as model_source"
        )
    state = keys.connectors_to_diffusers(keys.select(_read(contents.path, names), prefix),
                                         _read(projection_file.path, projection_names))
    config, origin = _config(contents, "connectors", "connectors_19b")
    return _load_module(LTX2TextConnectors, config, state, dtype, what="text connectors", where=str(contents.path),
                        hint=f"It was checked against {origin}. {_NEWER_HINT}")


# --------------------------------------------------------------------------------------------- Gemma
def gemma_config(contents: FileContents) -> dict[str, Any]:
    """The Gemma 3 text config: embedded in the file, else the shipped 12B one (checked against the file's shapes)."""
    embedded = contents.embedded_config("text_encoder")
    if embedded:
        return embedded
    return shipped_config("gemma3_12b")


def load_gemma(contents: FileContents, dtype, field_name: str = "model.text_encoder_path"):
    """A Gemma 3 language model (``Gemma3TextModel``: the vision tower is not needed to encode prompts)."""
    from transformers import Gemma3TextConfig, Gemma3TextModel

    if "gemma4" in contents.components:
        raise ModelLoadError(
            f"{field_name}: '{contents.path}' is a Gemma 4 text encoder. Stock Gemma 4 cannot drive LTX-2 (LTX-2.5 "
            "was trained on Lightricks' fine-tune 'gemma4-12b-ltx-v1'), and single files of that fine-tune are not "
            "supported yet: point model.text_encoder_path at the fine-tune's diffusers/transformers folder"
        )
    if "gemma3" not in contents.components:
        _need(contents, "gemma3", field_name)
    config = Gemma3TextConfig(**gemma_config(contents)).to_dict()

    def build(**kwargs):
        return Gemma3TextModel(Gemma3TextConfig(**kwargs))

    mapping = {}  # file name -> Gemma3TextModel name (the vision tower and projector are left out)
    for name in contents.shapes:
        renamed = keys.gemma_language_model({name: None})
        if renamed and name != GEMMA_TOKENIZER_TENSOR:
            mapping[name] = next(iter(renamed))
    check_shapes(_meta_state_shapes(build, config), {mapping[n]: contents.shapes[n] for n in mapping},
                 what="Gemma 3 text encoder", where=str(contents.path),
                 hint="LTX-2 and 2.3 need Gemma 3 12B (google/gemma-3-12b-it; ComfyUI's "
                      "text_encoders/gemma_3_12B_it*.safetensors)")
    tensors = {mapping[n]: t for n, t in _read(contents.path, list(mapping)).items()}
    # Through transformers' own loader (not a cast afterwards): it keeps the buffers (RoPE, embedding scale) as a
    # folder load does, so the hidden states are bit-identical to those of the same Gemma loaded from a folder.
    model = Gemma3TextModel.from_pretrained(None, config=Gemma3TextConfig(**config), state_dict=tensors, dtype=dtype)
    return model.eval()


def _tokenizer_from_folder(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _tokenizer_from_spiece(model_file: Path):
    """A Gemma tokenizer from a bare SentencePiece ``tokenizer.model`` (converted by transformers; Gemma adds <bos>
    and pads on the left, as ComfyUI's Gemma3_12BTokenizer does)."""
    import shutil
    import tempfile

    from transformers import GemmaTokenizer

    with tempfile.TemporaryDirectory(prefix="ltx2_tok_") as tmp:
        if model_file.name != "tokenizer.model" or not (model_file.parent / "tokenizer.model").is_file():
            shutil.copyfile(model_file, Path(tmp) / "tokenizer.model")
            folder = tmp
        else:
            folder = str(model_file.parent)
        return GemmaTokenizer.from_pretrained(folder, add_bos_token=True, padding_side="left", local_files_only=True)


def load_gemma_tokenizer(gemma_file: Path | None, tokenizer_path: str | None):
    """The Gemma tokenizer, from the first of: ``model.tokenizer_path`` (a tokenizer folder or a ``tokenizer.model``
    file), the ``spiece_model`` tensor ComfyUI's Gemma files carry, a ``tokenizer.model`` / ``tokenizer.json`` / a
    ``tokenizer`` folder beside the Gemma file, the Hugging Face cache of google/gemma-3-12b-it (offline)."""
    import tempfile

    if tokenizer_path:
        path = Path(tokenizer_path).expanduser()
        if not path.exists():
            raise ModelLoadError(f"model.tokenizer_path: '{tokenizer_path}' does not exist; check the path")
        try:
            return _tokenizer_from_spiece(path) if path.is_file() else _tokenizer_from_folder(path)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"model.tokenizer_path: could not load a Gemma tokenizer from '{path}' "
                                 f"({type(exc).__name__}: {str(exc)[:200]}); give the folder holding tokenizer.json "
                                 "or tokenizer.model of google/gemma-3-12b-it") from exc
    if gemma_file is not None:
        shapes, _ = read_header(gemma_file)
        if GEMMA_TOKENIZER_TENSOR in shapes:
            data = _read(gemma_file, [GEMMA_TOKENIZER_TENSOR])[GEMMA_TOKENIZER_TENSOR]
            with tempfile.TemporaryDirectory(prefix="ltx2_tok_") as tmp:
                model_file = Path(tmp) / "tokenizer.model"
                model_file.write_bytes(data.numpy().tobytes())
                return _tokenizer_from_spiece(model_file)
        beside = gemma_file.parent
        for candidate in (beside / f"{gemma_file.stem}_tokenizer", beside / "tokenizer"):
            if candidate.is_dir():
                return _tokenizer_from_folder(candidate)
        if (beside / "tokenizer.json").is_file():
            return _tokenizer_from_folder(beside)
        if (beside / "tokenizer.model").is_file():
            return _tokenizer_from_spiece(beside / "tokenizer.model")
    try:
        return _tokenizer_from_folder_or_hub(GEMMA_HUB_ID)
    except Exception as exc:  # noqa: BLE001 - not in the cache: say what to put where
        where = f"'{gemma_file}'" if gemma_file else "the text encoder file"
        raise ModelLoadError(
            f"no Gemma tokenizer for {where}: the file has no embedded tokenizer (ComfyUI's gemma_3_12B_it files "
            f"carry one as '{GEMMA_TOKENIZER_TENSOR}'), none lies beside it and {GEMMA_HUB_ID} is not in the Hugging "
            "Face cache. Put tokenizer.model (or tokenizer.json) of google/gemma-3-12b-it next to the Gemma file, or "
            "set model.tokenizer_path to a folder holding it"
        ) from exc


def _tokenizer_from_folder_or_hub(repo: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(repo, local_files_only=True)
