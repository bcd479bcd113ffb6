"""Loading for the LTX-2 family: ``tiny-ltx2``, diffusers folders, Hub repo ids, named versions, and the single files
ComfyUI users keep: the all-in-one checkpoint (``models/checkpoints``), a diffusion model (``models/diffusion_models``),
video / audio VAE files (``models/vae``) and a Gemma 3 file (``models/text_encoders``); see :mod:`.single_files`.

What generic code sees (``ModelComponents``): ``transformer``; ``vae`` = :class:`Ltx2Autoencoders` (video VAE,
audio VAE and vocoder: everything between pixels/waveforms and latents); ``text_encoder`` = the Gemma text encoder
and the frozen text connectors as one module (see :mod:`.text`); ``tokenizer``; ``scheduler``.

A single-file transformer's architecture comes from the config our exports embed, else it is read off the file's
tensor names and shapes (block count, widths, which LTX-2.3/2.5 features it has), so any release and size loads
with no network. Components a single file does not hold come from ``model.vae_path`` / ``model.audio_vae_path`` /
``model.text_encoder_path`` / ``model.tokenizer_path`` (files or folders), or from the version's Hub repository when
given by name.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import ModelLoadError
from ltx_train_lib.models.family import ModelComponents, ResolvedSource
from ltx_train_lib.models.ltx2.versions import MODEL_VERSIONS

log = logging.getLogger("ltx_train_lib.models.ltx2")
CONFIG_DIR = Path(__file__).parent / "configs"
TRANSFORMER_CONFIG_METADATA = "transformer_config"
# Tensor names only an LTX-2.x transformer has (ComfyUI / Lightricks names and diffusers names).
AUDIO_KEY_MARKERS = ("audio_patchify_proj.", "audio_proj_in.", "audio_adaln_single.", "audio_time_embed.")


def _autoencoders_class():
    import torch

    class Ltx2Autoencoders(torch.nn.Module):
        """The video VAE, the audio VAE and the vocoder of an LTX-2 model, moved and freed together."""

        def __init__(self, video: Any, audio: Any, vocoder: Any) -> None:
            super().__init__()
            self.video, self.audio, self.vocoder = video, audio, vocoder

        def enable_tiling(self) -> None:
            self.video.enable_tiling()

        @property
        def config(self):
            return self.video.config

    return Ltx2Autoencoders


def autoencoders(video: Any, audio: Any, vocoder: Any):
    return _autoencoders_class()(video, audio, vocoder)


# --------------------------------------------------------------------------------------------- architecture
def transformer_config(size: str) -> dict[str, Any]:
    """The shipped diffusers config of a release's transformer (``configs/transformer_<size>.json``)."""
    path = CONFIG_DIR / f"transformer_{size.lower()}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem.removeprefix("transformer_") for p in CONFIG_DIR.glob("transformer_*.json")))
        raise ModelLoadError(f"no LTX-2 transformer config for size '{size}'; known sizes: {known}")
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def build_random_transformer(size: str, dtype=None):
    from diffusers import LTX2VideoTransformer3DModel

    model = LTX2VideoTransformer3DModel(**transformer_config(size))
    return model.to(dtype) if dtype is not None else model


def _strip(name: str) -> str:
    for prefix in ("model.diffusion_model.", "diffusion_model.", "transformer."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def infer_transformer_config(shapes: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """A diffusers ``LTX2VideoTransformer3DModel`` config read off a transformer state dict's names and shapes
    (ComfyUI/Lightricks or diffusers names, any prefix). Raises ModelLoadError when it is not an LTX-2 transformer."""
    from ltx_train_lib.models.ltx2 import comfy_keys

    shapes = {comfy_keys.to_diffusers_path(_strip(k)): tuple(v) for k, v in shapes.items()}
    need = ("proj_in.weight", "audio_proj_in.weight", "transformer_blocks.0.attn1.to_q.weight")
    missing = [k for k in need if k not in shapes]
    if missing:
        raise ModelLoadError(f"not an LTX-2 transformer: no {', '.join(missing)} tensor")
    blocks = {int(m.group(1)) for k in shapes if (m := re.match(r"transformer_blocks\.(\d+)\.", k))}
    inner, in_ch = shapes["proj_in.weight"]
    audio_inner, audio_in = shapes["audio_proj_in.weight"]
    out_ch = shapes.get("proj_out.weight", (in_ch, inner))[0]
    audio_out = shapes.get("audio_proj_out.weight", (audio_in, audio_inner))[0]
    # Heads: the q/k norm is across heads (one weight of the inner width); head widths are 128 (video) and 64
    # (audio) in every release, so the head counts follow (and the tiny model's are stated in its own config).
    head_dim = 128 if inner % 128 == 0 else 8
    audio_head_dim = 64 if audio_inner % 64 == 0 else 4
    config: dict[str, Any] = dict(
        in_channels=in_ch, out_channels=out_ch, num_attention_heads=inner // head_dim, attention_head_dim=head_dim,
        cross_attention_dim=inner, audio_in_channels=audio_in, audio_out_channels=audio_out,
        audio_num_attention_heads=audio_inner // audio_head_dim, audio_attention_head_dim=audio_head_dim,
        audio_cross_attention_dim=audio_inner, num_layers=max(blocks) + 1,
    )
    if "caption_projection.linear_1.weight" in shapes:
        config["caption_channels"] = shapes["caption_projection.linear_1.weight"][1]
    else:
        config["use_prompt_embeddings"] = False  # 2.3+: per-modality projections live in the connectors
    block0 = "transformer_blocks.0."
    config["gated_attn"] = block0 + "attn1.to_gate_logits.weight" in shapes
    config["audio_gated_attn"] = block0 + "audio_attn1.to_gate_logits.weight" in shapes
    config["cross_attn_mod"] = any(k.startswith("prompt_adaln.") for k in shapes)
    config["audio_cross_attn_mod"] = any(k.startswith("audio_prompt_adaln.") for k in shapes)
    config["use_prompt_adaln_single"] = config["cross_attn_mod"]
    config["ff_bias"] = block0 + "ff.net.0.proj.bias" in shapes
    config["audio_ff_bias"] = block0 + "audio_ff.net.0.proj.bias" in shapes
    config["use_keyframes_abs_pos_embedding"] = "keyframes_abs_pos_embedding" in shapes
    return config


def _safetensors_shapes(path: Path) -> tuple[dict[str, list[int]], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}, dict(fh.metadata() or {})


def is_ltx2_file(path: Path) -> bool:
    """Whether a safetensors file holds an LTX-2.x transformer (header read only)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if meta.get("model_family") == "ltx2":
                return True
            if any(_strip(k).startswith(AUDIO_KEY_MARKERS) for k in fh.keys()):
                return True
    except Exception:  # noqa: BLE001 - unreadable files are someone else's error to report
        return False
    # Files only LTX-2 uses (its audio VAE / vocoder, Gemma): claimed so that giving one as model_source gets this
    # family's message ("holds an audio VAE, not a transformer"); a bare video VAE is left to whichever family.
    from ltx_train_lib.models.ltx2.single_files import inspect_file

    try:
        return bool({"connectors", "audio_vae", "vocoder", "gemma3", "gemma4"} & set(inspect_file(path).components))
    except ModelLoadError:
        return False


@contextmanager
def _single_file_config_dir(path: Path) -> Iterator[Path]:
    shapes, metadata = _safetensors_shapes(path)
    embedded = metadata.get(TRANSFORMER_CONFIG_METADATA)
    config = json.loads(embedded) if embedded else infer_transformer_config(shapes)
    with tempfile.TemporaryDirectory(prefix="ltx2_cfg_") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps({"_class_name": "LTX2VideoTransformer3DModel", **config}))
        yield Path(tmp)


# --------------------------------------------------------------------------------------------- components
def _wrap(what: str, where: str, exc: Exception) -> ModelLoadError:
    hint = (
        "it is not available locally and could not be downloaded; download it on a machine with network "
        f"(hf download {where}) or point the config at a local copy"
        if "/" in where and not Path(where).exists()
        else "check that the path holds a valid LTX-2 file or diffusers folder"
    )
    return ModelLoadError(f"could not load the {what} from '{where}': {type(exc).__name__}: {str(exc)[:300]}; {hint}")


def _classes() -> dict[str, Any]:
    import diffusers
    import transformers
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    return {
        "transformer": diffusers.LTX2VideoTransformer3DModel,
        "vae": diffusers.AutoencoderKLLTX2Video,
        "audio_vae": diffusers.AutoencoderKLLTX2Audio,
        "vocoder": LTX2Vocoder,
        "connectors": LTX2TextConnectors,
        "text_encoder": transformers.AutoModelForImageTextToText,
        "tokenizer": transformers.AutoTokenizer,
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler,
    }


def _vocoder_class(base: str):
    """LTX-2.3+ ship a vocoder with bandwidth extension (``LTX2VocoderWithBWE``); read the class from the folder."""
    from diffusers.pipelines.ltx2 import vocoder as vocoders

    index = Path(base) / "model_index.json"
    if index.is_file():
        entry = json.loads(index.read_text()).get("vocoder") or [None, "LTX2Vocoder"]
        return getattr(vocoders, entry[1], vocoders.LTX2Vocoder)
    return vocoders.LTX2Vocoder


def _from_pretrained(base: str, what: str, dtype, subfolder: str | None = None):
    cls = _vocoder_class(base) if what == "vocoder" and Path(base).is_dir() else _classes()[what]
    sub = subfolder or what
    try:
        kwargs: dict[str, Any] = {"subfolder": sub}
        if what not in ("tokenizer", "scheduler") and dtype is not None:
            kwargs["dtype"] = dtype
        if Path(base).is_dir():
            if not (Path(base) / sub).is_dir():
                kwargs.pop("subfolder")  # a bare component folder
            kwargs["local_files_only"] = True
        return cls.from_pretrained(base, **kwargs)
    except Exception as exc:  # noqa: BLE001 - diffusers/transformers raise many types
        raise _wrap(what, base, exc) from exc


def _check_text_encoder(model: Any, where: str) -> None:
    """Stock Gemma 4 is refused: LTX-2.5 was trained on Lightricks' fine-tune (``gemma4-12b-ltx-v1``)."""
    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", ""))
    name = str(getattr(config, "_name_or_path", "") or where).lower()
    if model_type.startswith("gemma4") and "ltx" not in name:
        raise ModelLoadError(
            f"'{where}' is a stock Gemma 4 model; LTX-2.5 needs Lightricks' fine-tune 'gemma4-12b-ltx-v1' (its "
            "projection into the space the connectors were trained on). Point model.text_encoder_path at that model, "
            "as ComfyUI's LTXAVTextEncoderLoader expects it"
        )


def _base(source: ResolvedSource) -> str | None:
    if source.kind == "tiny":
        from ltx_train_lib.models.ltx2.tiny import tiny_ltx2_dir

        return str(tiny_ltx2_dir())
    if source.kind in ("folder", "hub"):
        return source.location
    if source.kind == "version":
        assert source.version is not None
        return source.version.hf_repo
    return None


def _file_override(override: str | None) -> Path | None:
    """An override naming a single .safetensors file (ComfyUI's models/vae, models/text_encoders), else None."""
    if override and Path(override).expanduser().suffix in (".safetensors", ".sft"):
        return Path(override).expanduser()
    return None


def _vae_from_files(files: Mapping[str, Path], base: str | None, dtype):
    """Video VAE, audio VAE and vocoder: each from the first of ``files`` (config field -> file) that holds it,
    else from ``base``."""
    from ltx_train_lib.models.ltx2 import single_files

    contents = [single_files.inspect_file(f) for f in files.values()]
    parts_of_vae = {"vae", "audio_vae", "vocoder"}
    for field, found in zip(files, contents, strict=True):
        if field != "model.model_source" and not parts_of_vae & set(found.components):
            raise ModelLoadError(
                f"{field}: '{found.path}' holds {found.describe()}, not an LTX-2 video or audio VAE; give the VAE files "
                "of ComfyUI's models/vae (or the full checkpoint of models/checkpoints)"
            )
    loaders = {"vae": single_files.load_video_vae, "audio_vae": single_files.load_audio_vae,
               "vocoder": single_files.load_vocoder}
    parts = {}
    for part, loader in loaders.items():
        holder = next((c for c in contents if part in c.components), None)
        if holder is not None:
            parts[part] = loader(holder, dtype)
        elif base is not None:
            parts[part] = _from_pretrained(base, part, dtype)
        else:
            looked = ", ".join(f"'{c.path}' ({c.describe()})" for c in contents)
            field = "model.vae_path" if part == "vae" else "model.audio_vae_path"
            raise ModelLoadError(
                f"the LTX-2 {single_files.COMPONENT_NAMES[part].removeprefix('an LTX-2 ')} is in none of {looked}; set "
                f"{field} to the file that holds it (ComfyUI: models/vae/"
                f"{'LTX2_video_vae' if part == 'vae' else 'LTX2_audio_vae'}*.safetensors, or the full checkpoint "
                "models/checkpoints/ltx-2-19b-dev.safetensors), or a diffusers LTX-2 folder"
            )
    return autoencoders(parts["vae"], parts["audio_vae"], parts["vocoder"])


def _text_from_files(gemma_file: Path | None, gemma_folder: str | None, single: Path | None, base: str | None, dtype):
    from ltx_train_lib.models.ltx2 import single_files
    from ltx_train_lib.models.ltx2.text import text_stack

    gemma_contents = single_files.inspect_file(gemma_file) if gemma_file else None
    if gemma_contents is not None:
        gemma = single_files.load_gemma(gemma_contents, dtype)
    elif gemma_folder or base:
        where = gemma_folder or base
        gemma = _from_pretrained(where, "text_encoder", dtype)
        _check_text_encoder(gemma, where)
    else:
        raise ModelLoadError(
            f"the Gemma text encoder is not in the single file '{single}'; set model.text_encoder_path to the Gemma 3 "
            "12B file (ComfyUI: models/text_encoders/gemma_3_12B_it*.safetensors) or a Gemma folder"
        )
    if single is not None:
        connectors = single_files.load_connectors(single_files.inspect_file(single), dtype, projection_from=gemma_contents)
    elif base is not None:
        connectors = _from_pretrained(base, "connectors", dtype)
    else:  # a Gemma folder given with nothing else: its connectors are those of that folder
        connectors = _from_pretrained(str(gemma_folder), "connectors", dtype)
    return text_stack(gemma, connectors)


def _tokenizer(override: str | None, gemma_file: Path | None, base: str | None, single: Path | None,
               text_override: str | None):
    from ltx_train_lib.models.ltx2 import single_files

    if override and Path(override).expanduser().is_dir() and gemma_file is None:
        return _from_pretrained(str(Path(override).expanduser()), "tokenizer", None)
    if gemma_file is not None or override:
        return single_files.load_gemma_tokenizer(gemma_file, override)
    if text_override:  # a Gemma folder: its tokenizer
        return _from_pretrained(str(Path(text_override).expanduser()), "tokenizer", None)
    if base is not None:
        return _from_pretrained(base, "tokenizer", None)
    raise ModelLoadError(
        f"the Gemma tokenizer is not in the single file '{single}'; set model.text_encoder_path to the Gemma 3 file "
        "(ComfyUI's carries its tokenizer) or model.tokenizer_path to a folder with tokenizer.model/tokenizer.json"
    )


def load_components(source: ResolvedSource, components: Sequence[str], *, dtypes: Mapping[str, Any],
                    overrides: Mapping[str, str | None]) -> ModelComponents:
    out = ModelComponents(source=source)
    base = _base(source)
    single = Path(source.location) if source.kind == "single_file" else None
    for key in ("vae", "audio_vae", "text_encoder", "tokenizer"):
        override = overrides.get(key)
        if override and not Path(override).expanduser().exists():
            raise ModelLoadError(f"model.{key}_path: '{override}' does not exist; check the path")
    text_override = overrides.get("text_encoder")
    gemma_file = _file_override(text_override)
    for what in components:
        dtype = dtypes.get(what)
        override = overrides.get(what)
        where = str(Path(override).expanduser()) if override else base
        if what == "transformer" and single is not None and not override:
            value = _single_file_transformer(single, dtype)
        elif what == "vae":
            named = {"model.vae_path": _file_override(override),
                     "model.audio_vae_path": _file_override(overrides.get("audio_vae")), "model.model_source": single}
            files = {k: v for k, v in named.items() if v is not None}
            if override and not _file_override(override):  # a diffusers folder (or a bare VAE folder)
                value = autoencoders(_from_pretrained(where, "vae", dtype), _from_pretrained(where, "audio_vae", dtype),
                                     _from_pretrained(where, "vocoder", dtype))
            elif single is not None and not override and not overrides.get("audio_vae") and \
                    "vae" not in _single_contents(single).components:
                raise ModelLoadError(
                    f"the vae is not in the single file '{single}' (it holds "
                    f"{_single_contents(single).describe()}); set model.vae_path to the LTX-2 video VAE file (ComfyUI: "
                    "models/vae) and model.audio_vae_path to the audio VAE file, or to a diffusers LTX-2 folder (its "
                    "subfolders are found), or use a named version / a diffusers folder as model_source"
                )
            else:
                value = _vae_from_files(files, base, dtype)
            value.video.use_framewise_encoding = False
            value.video.use_framewise_decoding = False
        elif what == "text_encoder":
            folder = str(Path(text_override).expanduser()) if text_override and gemma_file is None else None
            value = _text_from_files(gemma_file, folder, single, base, dtype)
        elif what == "tokenizer":
            value = _tokenizer(override, gemma_file, base, single, text_override)
        elif where is None:
            raise ModelLoadError(
                f"the {what} is not in the single file '{source.location}'; use a named version / a diffusers folder "
                "as model_source"
            )
        else:
            value = _from_pretrained(where, what, dtype)
        setattr(out, what, value)
    return out


def _single_contents(path: Path):
    from ltx_train_lib.models.ltx2.single_files import inspect_file

    return inspect_file(path)


def _single_file_transformer(path: Path, dtype):
    """The transformer of a single file: only its tensors are read (an all-in-one checkpoint's VAEs, vocoder and
    connectors stay on disk), converted by diffusers' single-file loader."""
    from diffusers import LTX2VideoTransformer3DModel
    from safetensors import safe_open

    from ltx_train_lib.models.ltx2 import component_keys

    contents = _single_contents(path)
    if "transformer" not in contents.components:
        raise ModelLoadError(
            f"model.model_source: '{path}' holds {contents.describe()}, not an LTX-2 transformer; give the checkpoint "
            "(models/checkpoints) or diffusion model (models/diffusion_models) file as model_source, and VAE / text "
            "encoder files as model.vae_path / model.audio_vae_path / model.text_encoder_path"
        )
    prefix = contents.components["transformer"]
    skip = tuple(prefix + m for m in component_keys.CONNECTOR_MODULES)
    names = [k for k in contents.shapes if k.startswith(prefix) and not k.startswith(skip)
             and not k.startswith(("vae.", "audio_vae.", "vocoder.", "text_embedding_projection."))]
    try:
        with safe_open(str(path), framework="pt") as fh:
            state = {"model.diffusion_model." + k[len(prefix):]: fh.get_tensor(k) for k in names}
        with _single_file_config_dir(path) as config_dir:
            return LTX2VideoTransformer3DModel.from_single_file(
                state, config=str(config_dir), torch_dtype=dtype, local_files_only=True
            )
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _wrap("transformer", str(path), exc) from exc


def version_names() -> list[str]:
    return list(MODEL_VERSIONS)
