"""Loading for the LTX-Video family: named versions, Hub repo ids, local diffusers folders, single-file
checkpoints as ComfyUI users keep them, and the offline ``tiny`` source.

Local sources never touch the network. Remote sources go through huggingface_hub's cache; when they cannot be
fetched the error says which file was needed and how to provide it locally.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import ModelLoadError
from ltx_train_lib.models.family import ModelComponents, ResolvedSource
from ltx_train_lib.models.ltxv.versions import HF_MAIN_REPO, OLD_VAE_VERSIONS, VAE_REPO_095

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
