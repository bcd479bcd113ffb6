"""Loading for the LTX-Video family: named versions, Hub repo ids, local diffusers folders, single-file
checkpoints as ComfyUI users keep them, and the offline ``tiny`` source.

Local sources never touch the network. Remote sources go through huggingface_hub's cache; when they cannot be
fetched the error says which file was needed and how to provide it locally.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import ModelLoadError
from ltx_train_lib.models.family import CAUSAL_TEMPORAL_POSITIONING, ModelComponents, ResolvedSource
from ltx_train_lib.models.ltxv.versions import (
    HF_MAIN_REPO,
    MODEL_VERSIONS,
    NON_CAUSAL_VERSIONS,
    OLD_VAE_VERSIONS,
    VAE_REPO_095,
)

log = logging.getLogger("ltx_train_lib.models.ltxv")
CONFIG_DIR = Path(__file__).parent / "configs"


def transformer_config_dir(size: str) -> Path:
    """Folder with the diffusers config.json of the real 2B or 13B transformer (shipped, so no network needed)."""
    folder = CONFIG_DIR / f"transformer_{size.lower()}"
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"no transformer config for size '{size}'; known sizes: 2B, 13B")
    return folder


def build_random_transformer(size: str, dtype=None):
    """The real 2B/13B architecture with random weights (benchmarks): no download."""
    from diffusers import LTXVideoTransformer3DModel

    config = json.loads((transformer_config_dir(size) / "config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    model = LTXVideoTransformer3DModel(**config)
    return model.to(dtype) if dtype is not None else model


def _safetensors_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return list(fh.keys())


def _single_file_size(keys: list[str]) -> str:
    """2B has 28 transformer blocks, 13B has 48: read the highest block index from the key names."""
    blocks = [int(k.split("transformer_blocks.")[1].split(".")[0]) for k in keys if "transformer_blocks." in k]
    if not blocks:
        raise ModelLoadError("the file has no 'transformer_blocks.N' weights; it is not an LTX-Video transformer")
    return "13B" if max(blocks) + 1 > 28 else "2B"


TRANSFORMER_CONFIG_METADATA = "transformer_config"  # diffusers config JSON that our full-model exports carry
# The header key ComfyUI's model detection reads for LTX-Video (comfy/model_detection.py, detect_unet_config):
# ``json.loads(metadata["config"]).get("transformer", {})`` updates the LTXVModel arguments it guessed.
COMFY_CONFIG_METADATA = "config"


def causal_flag_from_metadata(metadata: Mapping[str, str] | None, where: str) -> bool | None:
    """``causal_temporal_positioning`` as ComfyUI reads it from a single file's safetensors header: the
    ``"transformer"`` member of the JSON in ``metadata["config"]``. None when the file does not state it (ComfyUI's
    ``LTXVModel`` then uses its default, False). A ``config`` ComfyUI could not read either is an error here too."""
    if not metadata or COMFY_CONFIG_METADATA not in metadata:
        return None
    try:
        config = json.loads(metadata[COMFY_CONFIG_METADATA])
    except json.JSONDecodeError as exc:
        raise ModelLoadError(
            f"'{where}': the 'config' header metadata is not valid JSON ({exc}); ComfyUI cannot load this file either. "
            "Fix or remove the metadata (or re-export the model)"
        ) from None
    transformer = config.get("transformer", {}) if isinstance(config, dict) else None
    if not isinstance(transformer, dict):
        raise ModelLoadError(
            f"'{where}': the 'config' header metadata must be a JSON object with a 'transformer' object (as in "
            "Lightricks' checkpoints); ComfyUI cannot load this file either. Fix or remove the metadata"
        )
    if CAUSAL_TEMPORAL_POSITIONING not in transformer:
        return None
    return bool(transformer[CAUSAL_TEMPORAL_POSITIONING])


def _single_file_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if path.suffix not in (".safetensors", ".sft"):
        return {}
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def _folder_config(folder: Path) -> dict | None:
    """The transformer's config.json of a diffusers pipeline folder (or of a bare transformer folder)."""
    for candidate in (folder / "transformer" / "config.json", folder / "config.json"):
        if candidate.is_file():
            try:
                config = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                return None
            return config if isinstance(config, dict) else None
    return None


def _cached_hub_file(repo: str, filename: str) -> Path | None:
    """A file of a Hub repository if huggingface_hub's cache holds it (never a download)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return None
    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def _version_default(version_name: str | None) -> bool:
    return version_name is not None and version_name not in NON_CAUSAL_VERSIONS


def causal_temporal_positioning(source: ResolvedSource) -> tuple[bool, str]:
    """Whether ComfyUI offsets this checkpoint's first latent frame in time, and where that was read.

    - single file: the ``config`` header metadata, exactly as ComfyUI's model detection reads it (absent: False);
    - named version: its single file's metadata when the file is in the Hub cache, else what that file states
      (:data:`~ltx_train_lib.models.ltxv.versions.NON_CAUSAL_VERSIONS` are off, later releases on);
    - diffusers folder or Hub repository: a ``causal_temporal_positioning`` key in the transformer's config.json
      (diffusers' own configs have none); else, for a named version's diffusers repository, that version's
      value; else False: ComfyUI loads LTX-Video only from single files and assumes False when nothing says
      otherwise.
    """
    if source.kind == "single_file":
        flag = causal_flag_from_metadata(_single_file_metadata(Path(source.location)), source.location)
        if flag is None:
            return False, f"'{Path(source.location).name}' states no causal_temporal_positioning (ComfyUI's default)"
        return flag, f"the 'config' metadata of '{Path(source.location).name}'"
    if source.kind == "version":
        version = source.version
        assert version is not None
        cached = _cached_hub_file(version.main_repo or HF_MAIN_REPO, version.single_file) if version.single_file else None
        if cached is not None:
            flag = causal_flag_from_metadata(_single_file_metadata(cached), str(cached))
            if flag is not None:
                return flag, f"the 'config' metadata of '{version.single_file}'"
        return _version_default(version.name), f"the release {version.name}"
    config: dict | None = None
    if source.kind == "tiny":
        from ltx_train_lib.models.ltxv.tiny import tiny_model_dir

        config = _folder_config(tiny_model_dir())
    elif source.kind == "folder":
        config = _folder_config(Path(source.location))
    elif source.kind == "hub":
        cached = _cached_hub_file(source.location, "transformer/config.json")
        config = _folder_config(cached.parent.parent) if cached is not None else None
    if config is not None and CAUSAL_TEMPORAL_POSITIONING in config:
        return bool(config[CAUSAL_TEMPORAL_POSITIONING]), "the transformer's config.json"
    if source.kind == "hub":
        for version in MODEL_VERSIONS.values():
            if version.hf_repo == source.location:
                return _version_default(version.name), f"the release {version.name} (its diffusers repository)"
    return False, "nothing states causal_temporal_positioning (ComfyUI's default)"


@contextmanager
def _single_file_config_dir(path: Path) -> Iterator[Path]:
    """The config folder for a single-file transformer: the config embedded in the file's header (our own exports),
    else the shipped 2B/13B config chosen by the number of blocks."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        keys = list(fh.keys())
        embedded = (fh.metadata() or {}).get(TRANSFORMER_CONFIG_METADATA)
    if embedded:
        with tempfile.TemporaryDirectory(prefix="ltx_cfg_") as tmp:
            (Path(tmp) / "config.json").write_text(embedded)
            yield Path(tmp)
        return
    yield transformer_config_dir(_single_file_size(keys))


def _wrap(what: str, where: str, exc: Exception) -> ModelLoadError:
    hint = (
        "it is not available locally and could not be downloaded; download it on a machine with network "
        f"(hf download {where}) or point the config at a local copy"
        if "/" in where and not Path(where).exists()
        else "check that the path holds a valid LTX-Video file"
    )
    return ModelLoadError(f"could not load the {what} from '{where}': {type(exc).__name__}: {str(exc)[:300]}; {hint}")


def _scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ltx_train_lib.models.ltxv.tiny import SCHEDULER_CONFIG

    # The LTX-Video scheduler is fully described by these constants: build it locally (never a download).
    return FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)


def _load_from_pretrained(repo_or_dir: str, what: str, dtype):
    import diffusers
    import transformers

    classes = {
        "transformer": diffusers.LTXVideoTransformer3DModel,
        "vae": diffusers.AutoencoderKLLTXVideo,
        "text_encoder": transformers.T5EncoderModel,
        "tokenizer": transformers.AutoTokenizer,
    }
    cls = classes[what]
    try:
        kwargs: dict[str, Any] = {"subfolder": what}
        if what != "tokenizer" and dtype is not None:
            kwargs["dtype"] = dtype
        if Path(repo_or_dir).is_dir():
            if not (Path(repo_or_dir) / what).is_dir():
                kwargs.pop("subfolder")  # a bare component folder (e.g. ComfyUI models/vae/<name>/)
            kwargs["local_files_only"] = True
        return cls.from_pretrained(repo_or_dir, **kwargs)
    except Exception as exc:  # noqa: BLE001 - diffusers/transformers raise many types
        raise _wrap(what, repo_or_dir, exc) from exc


def _load_single_file_component(path: str, what: str, dtype):
    import diffusers

    try:
        if what == "transformer":
            with _single_file_config_dir(Path(path)) as config_dir:
                return diffusers.LTXVideoTransformer3DModel.from_single_file(
                    path, config=str(config_dir), dtype=dtype, local_files_only=True
                )
        if what == "vae":
            return diffusers.AutoencoderKLLTXVideo.from_single_file(path, dtype=dtype)
        if what == "text_encoder":
            return _load_t5_single_file(Path(path), dtype)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _wrap(what, path, exc) from exc
    raise ModelLoadError(f"cannot load the {what} from a single file '{path}'; give a folder for it")


def load_components(
    source: ResolvedSource,
    components: Sequence[str],
    *,
    dtypes: Mapping[str, Any],
    overrides: Mapping[str, str | None],
) -> ModelComponents:
    """Load the requested components of an LTX-Video source (see ``ModelFamily.load_components``)."""
    out = ModelComponents(source=source)
    if source.kind == "tiny":
        from ltx_train_lib.models.ltxv.tiny import tiny_model_dir

        base: str | None = str(tiny_model_dir())
    elif source.kind in ("folder", "hub"):
        base = source.location
    else:
        base = None

    for what in components:
        if what == "scheduler":
            out.scheduler = _scheduler()
            continue
        dtype = dtypes.get(what)
        override = overrides.get(what)
        if override:
            loader_path = Path(override).expanduser()
            if not loader_path.exists():
                raise ModelLoadError(f"model.{what}_path: '{override}' does not exist; check the path")
            if loader_path.is_file():
                value = _load_single_file_component(str(loader_path), what, dtype)
            else:
                value = _load_from_pretrained(str(loader_path), what, dtype)
        elif base is not None:
            value = _load_from_pretrained(base, what, dtype)
        elif source.kind == "single_file":
            if what in ("transformer", "vae"):
                value = _load_single_file_component(source.location, what, dtype)
            else:  # T5 and its tokenizer are separate files in ComfyUI; fall back to the reference's repo
                value = _load_from_pretrained(HF_MAIN_REPO, what, dtype)
        else:  # named version
            version = source.version
            assert version is not None
            if what == "transformer":
                value = _load_version_transformer(version, dtype)
            elif what == "vae":
                repo = version.hf_repo if version.name in OLD_VAE_VERSIONS else VAE_REPO_095
                value = _load_from_pretrained(repo, "vae", dtype)
            else:
                value = _load_from_pretrained(HF_MAIN_REPO, what, dtype)
        setattr(out, what, value)
    if out.transformer is not None:
        # After loading: a Hub transformer's config.json is in the cache by now.
        flag, why = causal_temporal_positioning(source)
        out.extras[CAUSAL_TEMPORAL_POSITIONING] = flag
        log.info("causal temporal positioning %s for %s (from %s)", "on" if flag else "off", source.label, why)
    if out.vae is not None:
        # Frame-wise encoding changes results with the tiny VAE and brings nothing for training-size clips.
        out.vae.use_framewise_encoding = False
        out.vae.use_framewise_decoding = False
    return out


def _load_version_transformer(version, dtype):
    from diffusers import LTXVideoTransformer3DModel

    first_failure = ""
    if version.hf_repo:
        try:
            return LTXVideoTransformer3DModel.from_pretrained(version.hf_repo, subfolder="transformer", dtype=dtype)
        except Exception as exc:  # noqa: BLE001 - diffusers raises many types; the single file is the second way
            first_failure = f" (the diffusers repository {version.hf_repo} failed first: {type(exc).__name__}: {str(exc)[:160]})"
    try:
        return LTXVideoTransformer3DModel.from_single_file(
            version.single_file_url, config=str(transformer_config_dir(version.size)), dtype=dtype
        )
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"could not load {version.name}: {type(exc).__name__}: {str(exc)[:200]}{first_failure}; download "
            f"{version.single_file_url} (e.g. into ComfyUI/models/checkpoints) and set model.model_source to that file"
        ) from exc


def _load_t5_single_file(path: Path, dtype):
    """A T5-XXL encoder file as kept in ComfyUI's models/text_encoders (config shipped, weights from the file)."""
    import torch
    from safetensors.torch import load_file
    from transformers import T5Config, T5EncoderModel

    state = load_file(str(path))
    state = {k.removeprefix("text_encoders.t5xxl.transformer."): v for k, v in state.items()}
    if "shared.weight" not in state and "encoder.embed_tokens.weight" not in state:
        raise ModelLoadError(f"'{path}' has no T5 embedding weights ('shared.weight'); it is not a T5 encoder file")
    config = T5Config.from_pretrained(str(CONFIG_DIR / "t5_xxl"))
    with torch.device("meta"):
        model = T5EncoderModel(config)
    emb = state.get("shared.weight", state.get("encoder.embed_tokens.weight"))
    state.setdefault("shared.weight", emb)
    state.setdefault("encoder.embed_tokens.weight", emb)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if [m for m in missing if not m.endswith("embed_tokens.weight")]:
        raise ModelLoadError(f"'{path}': missing T5 weights {missing[:3]}...; is this the T5-XXL encoder used by LTX-Video?")
    return model.to(dtype)


def load_text_encoder_8bit(source: ResolvedSource, device, overrides: Mapping[str, str | None]):
    """T5 quantised to int8 with bitsandbytes (CUDA only), from the same place ``load_components`` would read it;
    returns (tokenizer, text_encoder)."""
    from ltx_train_lib.errors import ConfigError

    if device.type != "cuda":
        raise ConfigError("--load-text-encoder-in-8bit needs a CUDA GPU (bitsandbytes); drop the flag on CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--load-text-encoder-in-8bit needs bitsandbytes: pip install bitsandbytes") from exc
    import torch
    from transformers import BitsAndBytesConfig, T5EncoderModel

    if source.kind == "tiny":
        from ltx_train_lib.models.ltxv.tiny import tiny_model_dir

        where = str(tiny_model_dir())
    elif source.kind in ("folder", "hub"):
        where = source.location
    else:
        where = HF_MAIN_REPO
    if overrides.get("text_encoder"):
        where = str(overrides["text_encoder"])  # a folder; 8-bit loading of a single T5 file is not supported
    try:
        text_encoder = T5EncoderModel.from_pretrained(
            where,
            subfolder="text_encoder",
            quantization_config=BitsAndBytesConfig(load_in_8bit=True),
            dtype=torch.bfloat16,
            device_map={"": device.index or 0},
        )
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise ModelLoadError(f"could not load the text encoder in 8-bit from '{where}': {exc}") from exc
    tokenizer = load_components(source, ("tokenizer",), dtypes={}, overrides={"tokenizer": overrides.get("tokenizer")}).tokenizer
    return tokenizer, text_encoder.eval()
