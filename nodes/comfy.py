"""Everything the nodes need from ComfyUI, in one place: the only module of the pack that imports ComfyUI.

Inside ComfyUI it uses ``comfy.utils.ProgressBar``, ``server.PromptServer`` (progress text, websocket events),
``comfy.model_management`` (interrupt, unloading models), ``folder_paths``, ``comfy.lora`` (applying LoRAs) and
``comfy.sample``/``comfy.samplers`` (KSampler's sampling). Anywhere else (tests, scripts) every
function falls back to logging, no-ops and local folders under ``$LTX_TRAINER_ROOT`` (default: the current folder,
laid out like ComfyUI's: ``input/``, ``output/``, ``temp/``, ``models/<kind>/``), so every node runs as plain Python.

ComfyUI modules are imported lazily, on first use: importing the pack must stay cheap and torch-free, and
``comfy.model_management`` imports torch.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("ltx_trainer.nodes")

ROOT_ENV = "LTX_TRAINER_ROOT"
# Folders of captioning models (Qwen2.5-VL folders with a config.json). "LLM" is what other captioning packs use.
CAPTIONER_FOLDERS = ("LLM", "ltx_trainer_captioners")
MODEL_FILE_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")


class Interrupted(Exception):
    """Raised outside ComfyUI when the interrupt hook fires (ComfyUI raises its own InterruptProcessingException)."""


# ------------------------------------------------------------------------------------------------ ComfyUI access

_modules: dict[str, Any] = {}
_lock = threading.Lock()


def _comfy(name: str) -> Any | None:
    """A ComfyUI module (``folder_paths``, ``server``, ``comfy.utils``, ...) or None outside ComfyUI. Cached."""
    with _lock:
        if name not in _modules:
            module = None
            if in_comfyui():
                try:
                    module = __import__(name, fromlist=["_"])
                except Exception as exc:  # noqa: BLE001 - a broken ComfyUI module must not break the pack
                    log.warning("ComfyUI module %s cannot be imported (%s); using the fallback", name, exc)
            _modules[name] = module
        return _modules[name]


def in_comfyui() -> bool:
    """True inside a running ComfyUI (its ``folder_paths`` and ``comfy.model_management`` are loaded).

    Checked through ``sys.modules`` rather than by importing: a stray ``comfy`` package elsewhere must not fool us,
    and ComfyUI has always loaded both before it imports custom nodes.
    """
    import sys

    fp = sys.modules.get("folder_paths")
    return fp is not None and hasattr(fp, "get_output_directory") and "comfy.model_management" in sys.modules


# --------------------------------------------------------------------------------------------------- interrupt

# Test hook: a callable returning True simulates ComfyUI's Cancel button (outside ComfyUI only).
interrupt_hook: Callable[[], bool] | None = None
_interrupt_flag = threading.Event()


def request_interrupt() -> None:
    """Outside ComfyUI: make the next check raise :class:`Interrupted` (what ComfyUI's Cancel does inside it)."""
    _interrupt_flag.set()


def clear_interrupt() -> None:
    _interrupt_flag.clear()


def processing_interrupted() -> bool:
    """Whether the user pressed Cancel (no side effect)."""
    mm = _comfy("comfy.model_management")
    if mm is not None:
        return bool(mm.processing_interrupted())
    if interrupt_hook is not None and interrupt_hook():
        _interrupt_flag.set()
    return _interrupt_flag.is_set()


def throw_if_interrupted() -> None:
    """Raise ComfyUI's interrupt exception (clearing the flag, as ComfyUI does) if Cancel was pressed."""
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()
        return
    if processing_interrupted():
        _interrupt_flag.clear()
        raise Interrupted("processing interrupted (Cancel)")


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is ComfyUI's (or the fallback's) interrupt exception."""
    if isinstance(exc, Interrupted):
        return True
    mm = _comfy("comfy.model_management")
    cls = getattr(mm, "InterruptProcessingException", None) if mm is not None else None
    return cls is not None and isinstance(exc, cls)


# ---------------------------------------------------------------------------------------------------- progress


class Progress:
    """A node's progress bar. Inside ComfyUI it is ``comfy.utils.ProgressBar`` (its hook raises the interrupt
    exception on Cancel); outside, progress goes to the log every 10 %."""

    def __init__(self, total: int, node_id: str | None = None, label: str = "") -> None:
        self.total = max(1, int(total))
        self.node_id = node_id
        self.label = label
        self._last_logged = -1
        utils = _comfy("comfy.utils")
        self._bar = utils.ProgressBar(self.total, node_id=node_id) if utils is not None else None

    def update(self, value: int, total: int | None = None) -> None:
        if total is not None and total > 0:
            self.total = int(total)
        value = max(0, min(int(value), self.total))
        if self._bar is not None:
            self._bar.update_absolute(value, self.total)
            return
        tenth = value * 10 // self.total
        if tenth != self._last_logged:
            self._last_logged = tenth
            log.info("%s %d/%d", self.label or "progress", value, self.total)


def progress_text(text: str, node_id: str | None) -> None:
    """A line of text shown inside the node (ComfyUI >= 0.3.4x ``send_progress_text``); logged elsewhere.

    Sent to the client that queued the running prompt (``PromptServer.client_id``, the ``sid`` ComfyUI's own
    ``executing``/``executed``/``progress`` messages use), not to every open editor: ``send_progress_text`` broadcasts
    without a ``sid``, and the frontend puts the text on the node with that id in whatever workflow its canvas shows
    (frontend 1.27.10 ``executionStore.handleProgressText``: ``canvas.graph.getNodeById(nodeId)``, no workflow or
    prompt check). Servers whose ``send_progress_text`` takes a ``prompt_id`` also get it; newer frontends then drop
    text of a prompt that is not their active one. ``sid``/``prompt_id`` go by keyword: their order differs between
    versions (``(text, node_id, sid)`` in 0.3.64 and 0.33, ``(text, node_id, prompt_id, sid)`` later).
    """
    server = _server()
    if server is not None and node_id is not None and hasattr(server, "send_progress_text"):
        with contextlib.suppress(Exception):
            kwargs: dict[str, Any] = {"sid": getattr(server, "client_id", None)}
            prompt_id = getattr(server, "last_prompt_id", None)
            if prompt_id and _accepts(server.send_progress_text, "prompt_id"):
                kwargs["prompt_id"] = prompt_id
            server.send_progress_text(text, node_id, **kwargs)
            return
    log.info("[node %s] %s", node_id, text)


def _accepts(fn: Callable, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def send_event(event: str, data: dict[str, Any]) -> None:
    """A custom websocket event to every open editor (the training monitor listens to all of them)."""
    server = _server()
    if server is not None:
        with contextlib.suppress(Exception):
            server.send_sync(event, data, None)
            return
    log.debug("event %s %s", event, data)


def _server() -> Any | None:
    module = _comfy("server")
    return getattr(getattr(module, "PromptServer", None), "instance", None) if module is not None else None


# ------------------------------------------------------------------------------------------------------ memory


def unload_models() -> None:
    """Ask ComfyUI to unload every model it holds and free cached memory (before a big job of ours)."""
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.unload_all_models()
        mm.soft_empty_cache()
    gc.collect()


def free_memory() -> None:
    """Return freed memory to the system/GPU after our own models were dropped."""
    gc.collect()
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.soft_empty_cache()
        return
    import sys

    torch = sys.modules.get("torch")  # only if something already imported it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------------- folders


def fallback_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or Path.cwd()).expanduser().resolve()


def input_dir() -> Path:
    fp = _comfy("folder_paths")
    return Path(fp.get_input_directory()) if fp is not None else fallback_root() / "input"


def output_dir() -> Path:
    fp = _comfy("folder_paths")
    return Path(fp.get_output_directory()) if fp is not None else fallback_root() / "output"


def temp_dir() -> Path:
    fp = _comfy("folder_paths")
    return Path(fp.get_temp_directory()) if fp is not None else fallback_root() / "temp"


def trainer_dir() -> Path:
    """``<output>/ltx_trainer``: datasets and jobs of this pack."""
    return output_dir() / "ltx_trainer"


def jobs_root() -> Path:
    """Where TrainLoRA creates job folders (the web monitor reads the same place)."""
    return trainer_dir() / "jobs"


def model_folders(kind: str) -> list[Path]:
    """ComfyUI's folders for a model kind (``checkpoints``, ``loras``, ``vae``, ``LLM``...)."""
    fp = _comfy("folder_paths")
    if fp is not None:
        try:
            return [Path(p) for p in fp.get_folder_paths(kind)]
        except KeyError:
            return [Path(fp.models_dir) / kind]
    return [fallback_root() / "models" / kind]


def model_files(kind: str) -> list[str]:
    """Model files of a kind, as ComfyUI lists them (relative names, '/' separators)."""
    fp = _comfy("folder_paths")
    if fp is not None:
        with contextlib.suppress(KeyError):
            return sorted(fp.get_filename_list(kind))
    names: set[str] = set()
    for folder in model_folders(kind):
        if folder.is_dir():
            for p in folder.rglob("*"):
                if p.is_file() and p.suffix.lower() in MODEL_FILE_SUFFIXES:
                    names.add(p.relative_to(folder).as_posix())
    return sorted(names)


def model_file_path(kind: str, name: str) -> Path | None:
    """Full path of a file listed by :func:`model_files`; None when it is not there."""
    fp = _comfy("folder_paths")
    if fp is not None:
        with contextlib.suppress(KeyError):
            full = fp.get_full_path(kind, name)
            return Path(full) if full else None
    for folder in model_folders(kind):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def captioner_folders() -> list[str]:
    """Local captioning models: sub-folders (with a config.json) of the captioner model folders, as
    ``<folder kind>/<name>``."""
    found = []
    for kind in CAPTIONER_FOLDERS:
        for folder in model_folders(kind):
            if folder.is_dir():
                for sub in sorted(folder.iterdir()):
                    if (sub / "config.json").is_file():
                        found.append(f"{kind}/{sub.name}")
    return found


def captioner_folder_path(entry: str) -> Path | None:
    kind, _, name = entry.partition("/")
    if kind not in CAPTIONER_FOLDERS or not name:
        return None
    for folder in model_folders(kind):
        if (folder / name / "config.json").is_file():
            return folder / name
    return None


def forget_file_list(kind: str) -> None:
    """Drop ComfyUI's cached file list of a model kind, so loaders list a file we just wrote without a restart."""
    fp = _comfy("folder_paths")
    cache = getattr(fp, "filename_list_cache", None) if fp is not None else None
    if isinstance(cache, dict):
        cache.pop(kind, None)


def resolve_input(path: str, what: str) -> Path:
    """A user-given path for reading: absolute as given, relative against ComfyUI's input folder (then the output
    folder, where earlier nodes of this pack write). Raises FileNotFoundError naming the input and the fix."""
    text = (path or "").strip().strip('"')
    if not text:
        raise FileNotFoundError(f"{what}: no path given; enter a folder under {input_dir()} or an absolute path")
    p = Path(text).expanduser()
    if p.is_absolute():
        if not p.exists():
            raise FileNotFoundError(f"{what}: '{p}' does not exist; check the path")
        return p
    for base in (input_dir(), output_dir()):
        if (base / p).exists():
            return base / p
    raise FileNotFoundError(
        f"{what}: '{text}' was not found in ComfyUI's input folder ({input_dir()}) nor its output folder; "
        f"put it under {input_dir() / text} or give an absolute path"
    )


def resolve_output(path: str | Path) -> Path:
    """A path for writing: absolute as given, relative against ComfyUI's output folder."""
    p = Path(str(path)).expanduser()
    return p if p.is_absolute() else output_dir() / p


# ------------------------------------------------------------------------------------------------ UI previews


def preview_entry(path: Path) -> dict[str, str]:
    """``{"filename", "subfolder", "type"}`` for a file the frontend can fetch through ``/view``. Files outside the
    output/temp/input folders are copied into the temp folder first (``/view`` serves only those)."""
    path = Path(path).resolve()
    for kind, base in (("output", output_dir()), ("temp", temp_dir()), ("input", input_dir())):
        try:
            rel = path.relative_to(base.resolve())
        except ValueError:
            continue
        return {"filename": rel.name, "subfolder": rel.parent.as_posix() if rel.parent != Path(".") else "", "type": kind}
    target = temp_dir() / "ltx_trainer" / f"{uuid.uuid4().hex[:8]}_{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return {"filename": target.name, "subfolder": "ltx_trainer", "type": "temp"}


def save_preview_image(rgb: Any, name: str) -> dict[str, str]:
    """Save an RGB uint8 array as a PNG in the temp folder; returns its UI entry."""
    from PIL import Image

    folder = temp_dir() / "ltx_trainer"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    target = folder / f"{uuid.uuid4().hex[:8]}_{safe}.png"
    Image.fromarray(rgb).save(target, compress_level=1)
    return {"filename": target.name, "subfolder": "ltx_trainer", "type": "temp"}


def ui_images(entries: list[dict[str, str]]) -> dict[str, list]:
    return {"images": entries}


def ui_videos(entries: list[dict[str, str]]) -> dict[str, list]:
    """mp4 previews the way ComfyUI's own SaveVideo reports them: an "images" list plus ``animated``, which the
    frontend shows as a video player for video files."""
    return {"images": entries, "animated": [True]} if entries else {}


def ui_text(lines: list[str] | str, node_id: str | None = None) -> dict[str, list[str]]:
    """A node's text result: in the ``ui`` dict (history, API clients, extensions) and, with ``node_id``, also as the
    node's progress text, which the stock frontend keeps showing inside the node after it ran (it does not render
    a ``text`` ui entry of a custom node by itself)."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    if node_id is not None:
        progress_text(text, node_id)
    return {"text": [text]}


# ------------------------------------------------------------------------------------------------------- LoRAs


def _comfy_lora_patches(model: Any, sd: dict[str, Any], *, log_missing: bool = True) -> tuple[dict, dict, dict]:
    """(the converted state dict, ComfyUI's key map for ``model``, the patches ComfyUI's loader makes of ``sd``):
    ``comfy.lora_convert.convert_lora`` + ``comfy.lora.model_lora_keys_unet(model.model, {})`` +
    ``comfy.lora.load_lora``, what LoraLoaderModelOnly runs."""
    lora = _comfy("comfy.lora")
    if lora is None:
        raise RuntimeError("checking or applying a LoRA against a MODEL needs ComfyUI; disconnect 'model' when running outside it")
    convert = getattr(_comfy("comfy.lora_convert"), "convert_lora", None)
    if convert is not None:
        sd = convert(sd)
    key_map = lora.model_lora_keys_unet(model.model, {})
    try:
        patches = lora.load_lora(sd, key_map, log_missing=log_missing)
    except TypeError:  # a ComfyUI from before load_lora's log_missing
        patches = lora.load_lora(sd, key_map)
    return sd, key_map, patches


def lora_load_check(model: Any, sd: dict[str, Any]) -> Any:
    """Which keys of the LoRA state dict ``sd`` would not load into the ComfyUI MODEL ``model``, by ComfyUI's own key
    map and loader, without patching anything: a :class:`ltx_train_lib.lora_health.ComfyKeyCheck`."""
    from ltx_train_lib.lora_health import comfy_key_check

    sd, key_map, patches = _comfy_lora_patches(model, sd, log_missing=False)
    return comfy_key_check(list(sd.keys()), key_map, patches.keys(), model.model.state_dict().keys())


def apply_lora(model: Any, lora_path: Path, strength: float, what: str = "ConvertComfy.model") -> tuple[Any, Any]:
    """Apply a LoRA file to a ComfyUI MODEL the way LoraLoaderModelOnly does (:func:`_comfy_lora_patches` +
    ``ModelPatcher.add_patches``). Returns (patched clone, :class:`~ltx_train_lib.lora_health.ComfyKeyCheck`: the
    file keys whose weight ``add_patches`` did not accept). ``what``: the node input holding the model."""
    from ltx_train_lib.lora_health import comfy_key_check

    utils = _comfy("comfy.utils")
    if utils is None or _comfy("comfy.lora") is None:
        raise RuntimeError(
            f"{what}: applying a LoRA to a MODEL needs ComfyUI; disconnect 'model' when running outside it"
        )
    sd, key_map, patches = _comfy_lora_patches(model, utils.load_torch_file(str(lora_path), safe_load=True))
    patched_model = model.clone()
    patched = patched_model.add_patches(patches, strength)
    return patched_model, comfy_key_check(list(sd.keys()), key_map, patched)


# ---------------------------------------------------------------------------------------------------- sampling

# KSampler's lists when ComfyUI is not there (tests, docs): the first entries of ComfyUI 0.3.64's lists, so a
# workflow saved outside ComfyUI holds names every ComfyUI knows.
FALLBACK_SAMPLERS = ("euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "uni_pc")
FALLBACK_SCHEDULERS = ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal")
# Keys of a LATENT dict that only fix_empty_latent_channels reads (ComfyUI >= 0.3.7x); common_ksampler drops them.
_LATENT_RATIO_KEYS = ("downscale_ratio_spacial", "downscale_ratio_temporal")


def sampler_names() -> list[str]:
    """KSampler's sampler list (``comfy.samplers.KSampler.SAMPLERS``)."""
    samplers = getattr(_comfy("comfy.samplers"), "KSampler", None)
    return list(getattr(samplers, "SAMPLERS", None) or FALLBACK_SAMPLERS)


def scheduler_names() -> list[str]:
    """KSampler's scheduler list (``comfy.samplers.KSampler.SCHEDULERS``)."""
    samplers = getattr(_comfy("comfy.samplers"), "KSampler", None)
    return list(getattr(samplers, "SCHEDULERS", None) or FALLBACK_SCHEDULERS)


def vae_decode(vae: Any, samples: Any) -> Any:
    """ComfyUI's VAE decode of a LATENT's samples, as batch x frames x H x W x 3 in [0, 1]: what VAE Decode does
    (``vae.decode``) before it folds a video's frames into the IMAGE batch."""
    images = vae.decode(samples)
    return images[:, None] if images.ndim == 4 else images  # an image model: one frame each


def ksample(
    model: Any,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: Any,
    negative: Any,
    latent: dict[str, Any],
    denoise: float = 1.0,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Sample ``latent`` exactly as ComfyUI's KSampler does (``nodes.common_ksampler``, 0.3.64 to 0.33: the same
    latent fix-up, ``comfy.sample.prepare_noise`` from ``seed`` and ``batch_index``, the latent's ``noise_mask``,
    then ``comfy.sample.sample``), so a LoRA compared here gives what LoraLoaderModelOnly + KSampler give with the
    same inputs. The one difference is the step callback: ``on_step(step, total_steps)`` instead of KSampler's own
    progress bar, so a node that samples several times can show one bar over all of them."""
    sample = _comfy("comfy.sample")
    if sample is None:
        raise RuntimeError("sampling a MODEL needs ComfyUI; run this node inside ComfyUI")
    latent_image = latent["samples"]
    fix = sample.fix_empty_latent_channels
    if all(_accepts(fix, k) for k in _LATENT_RATIO_KEYS):
        latent_image = fix(model, latent_image, *(latent.get(k) for k in _LATENT_RATIO_KEYS))
    else:
        latent_image = fix(model, latent_image)
    noise = sample.prepare_noise(latent_image, seed, latent.get("batch_index"))

    def callback(step: int, x0: Any, x: Any, total_steps: int) -> None:
        if on_step is not None:
            on_step(step + 1, total_steps)

    utils = _comfy("comfy.utils")
    samples = sample.sample(
        model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=denoise,
        noise_mask=latent.get("noise_mask"), callback=callback,
        disable_pbar=not getattr(utils, "PROGRESS_BAR_ENABLED", False), seed=seed,
    )
    out = {k: v for k, v in latent.items() if k not in _LATENT_RATIO_KEYS}
    out["samples"] = samples
    return out
