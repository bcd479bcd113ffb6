"""ConvertComfy (the LoRA into ComfyUI's loras folder, optionally applied to a MODEL) and PushToHub."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from . import comfy
from . import types as T
from .schema_widgets import schema_widget

HUB_MARKER = "hub_push.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def lora_file_name(name: str, what: str = "ConvertComfy.lora_name") -> str:
    """A safe relative file name under the loras folder ('/' sub-folders allowed, '.safetensors' added). ``what``:
    the node input the name came from, for the message."""
    parts = [re.sub(r"[^A-Za-z0-9_.+-]+", "_", p).strip(".") for p in name.replace("\\", "/").split("/")]
    parts = [p for p in parts if p]
    if not parts:
        raise ValueError(f"{what}: empty; give a file name such as 'my_ltxv_lora'")
    if not parts[-1].endswith(".safetensors"):
        parts[-1] += ".safetensors"
    return "/".join(parts)


def lora_modules(keys: list[str]) -> dict[str, list[str]]:
    """Module prefix -> the file keys that belong to it."""
    from ltx_train_lib.lora_health import lora_file_modules

    return lora_file_modules(keys)


def unpatched_lora_keys(file_keys: list[str], key_map: dict[str, Any], patched: list[Any]) -> list[str]:
    """File keys that patched no model weight: their module is unknown to ComfyUI's key map for this model, or its
    weight was not among those ``ModelPatcher.add_patches`` accepted."""
    from ltx_train_lib.lora_health import comfy_key_check

    return comfy_key_check(file_keys, key_map, patched).not_loaded


def save_into_loras(source: Path, lora_name: str, overwrite: bool, what: str) -> tuple[str, Path, str]:
    """Copy the ComfyUI-layout LoRA ``source`` into ComfyUI's (first) loras folder as ``lora_name``, atomically, and
    refresh ComfyUI's file list so LoRA loaders list it without a restart. Returns (the name loaders list, the
    target path, "saved" | "unchanged"). A *different* file already under that name is replaced only with
    ``overwrite``; an identical one is kept. ``what``: the node input that gave the name, for messages."""
    from ltx_train_lib.fileio import atomic_path

    name = lora_file_name(lora_name, what)
    folder = comfy.model_folders("loras")[0]
    target = folder / name
    if not target.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"{what}: '{lora_name}' points outside the loras folder; use a plain name")
    status = "saved"
    if target.exists():
        if _sha256(target) == _sha256(source):
            status = "unchanged"
        elif not overwrite:
            raise FileExistsError(
                f"{what}: '{name}' already exists in {folder} and is a different LoRA; choose another name or enable "
                "'overwrite'"
            )
    if status != "unchanged":
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        comfy.forget_file_list("loras")
    return name, target, status


class ConvertComfy:
    """Put the trained LoRA where ComfyUI's LoRA loaders find it, and optionally apply it to a model."""

    CATEGORY = "LTX Trainer/export"
    SEARCH_ALIASES = ["save lora", "export lora", "convert lora", "lora to comfyui", "apply lora", "lora health"]
    DESCRIPTION = (
        "Copies the LoRA in ComfyUI's key layout (diffusion_model.*, patchify_proj, adaln_single, .alpha) into the "
        "loras folder, so LoraLoaderModelOnly lists it without a restart; a LoRA holding NaN/Inf values (or one that "
        "changes nothing) is refused. With a MODEL connected it also returns that model with the LoRA applied through "
        "ComfyUI's own loader, and fails if any key of the file patched nothing."
    )
    RETURN_TYPES = ("MODEL", "STRING")
    RETURN_NAMES = ("model", "lora_name")
    OUTPUT_TOOLTIPS = (
        "The input model with the LoRA applied (None when no model is connected).",
        "The LoRA's name as LoRA loaders list it.",
    )
    FUNCTION = "convert"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "lora": (T.LORA, {"tooltip": "The trained LoRA (from Train LoRA)."}),
                "lora_name": (
                    "STRING",
                    {"default": "ltxv_lora", "tooltip": "File name in models/loras ('.safetensors' is added; 'a/b' makes a sub-folder)."},
                ),
                "overwrite": (
                    "BOOLEAN",
                    {"default": False, "tooltip": "Replace a different LoRA already saved under this name."},
                ),
                "strength": (
                    "FLOAT",
                    {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip": "LoRA strength when applied to 'model'."},
                ),
            },
            "optional": {
                "model": ("MODEL", {"tooltip": "Optional: an LTX-Video model to apply the LoRA to (e.g. from Load Checkpoint)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def convert(
        self, lora: T.LoraResult, lora_name: str, overwrite: bool, strength: float, model: Any = None, unique_id: str | None = None
    ):
        from ltx_train_lib import export
        from ltx_train_lib.lora_health import check_files

        source = lora.lora_comfy if lora.lora_comfy is not None and lora.lora_comfy.is_file() else None
        if source is None:
            # An older job, or the ComfyUI file was deleted: make it again from the diffusers file.
            source = export.convert_file(lora.lora, to="comfy", output_path=lora.job_dir / "lora_weights_comfy.safetensors")
        (health,) = check_files([source], action="save it into ComfyUI's loras folder")
        name, target, status = save_into_loras(source, lora_name, overwrite, "ConvertComfy.lora_name")
        lines = [f"{status}: {target}", health.summary()]
        out_model = None
        if model is not None:
            out_model, check = comfy.apply_lora(model, target, strength)
            unpatched = check.not_loaded
            if unpatched:
                raise RuntimeError(
                    f"ConvertComfy: {len(unpatched)} of {check.keys} keys of {target.name} patched no weight of "
                    f"the connected model: {', '.join(unpatched[:8])}{' ...' if len(unpatched) > 8 else ''}; the "
                    "model is not the LTX-Video model this LoRA was trained on (check the checkpoint and its version)"
                )
            lines.append(check.summary())
            lines.append(f"applied to the model: {check.modules} modules patched at strength {strength}")
        return {"ui": comfy.ui_text(lines, unique_id), "result": (out_model, name)}


class PushToHub:
    """Upload the LoRA, its config, a model card and sample GIFs to the Hugging Face Hub."""

    CATEGORY = "LTX Trainer/export"
    SEARCH_ALIASES = ["hugging face", "huggingface", "upload lora", "publish lora", "hf hub", "share lora"]
    DESCRIPTION = (
        "Uploads the job's LoRA files, training config, a model card and the last validation videos (as GIFs) in one "
        "commit. The token is read from HF_TOKEN or the Hugging Face login cache (`hf auth login`), never from the "
        "workflow. An identical upload to the same repository is not repeated unless 'push_again' is on."
    )
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("url",)
    OUTPUT_TOOLTIPS = ("The repository URL.",)
    FUNCTION = "push"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        from ltx_train_lib.config import HubConfig

        return {
            "required": {
                "lora": (T.LORA, {"tooltip": "The trained LoRA (from Train LoRA)."}),
                "repo_id": schema_widget(HubConfig, "hub_model_id"),
                "private": schema_widget(HubConfig, "private"),
                "trigger_word": (
                    "STRING",
                    {"default": "", "tooltip": "Trigger word for the model card; empty = the dataset's trigger word."},
                ),
                "endpoint": (
                    "STRING",
                    {"default": "", "tooltip": "Hub URL; empty = HF_ENDPOINT or https://huggingface.co."},
                ),
                "push_again": (
                    "BOOLEAN",
                    {"default": False, "tooltip": "Upload even if this LoRA was already pushed to this repository."},
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def push(
        self,
        lora: T.LoraResult,
        repo_id: str,
        private: bool,
        trigger_word: str,
        endpoint: str,
        push_again: bool,
        unique_id: str | None = None,
    ):
        from ltx_train_lib.fileio import write_text_atomic
        from ltx_train_lib.hub import HubError, push_to_hub

        repo_id = repo_id.strip()
        if not repo_id:
            raise HubError("PushToHub.repo_id: empty; give the target repository as 'user-or-org/name'")
        marker_path = lora.job_dir / HUB_MARKER
        identity = {"repo_id": repo_id, "endpoint": endpoint.strip(), "private": private, "sha256": _sha256(lora.lora)}
        pushed = _read_marker(marker_path)
        previous = next((p for p in pushed if {k: p.get(k) for k in identity} == identity), None)
        if previous is not None and not push_again:
            url = previous["url"]
            return {"ui": comfy.ui_text(f"already uploaded to {url} (enable push_again to upload again)", unique_id), "result": (url,)}
        url = push_to_hub(
            lora.job_dir,
            repo_id,
            private=private,
            endpoint=endpoint.strip() or None,
            trigger_word=trigger_word.strip() or lora.trigger_word,
        )
        pushed = [p for p in pushed if {k: p.get(k) for k in identity} != identity]
        pushed.append({**identity, "url": url, "time": round(time.time(), 3)})
        write_text_atomic(marker_path, json.dumps(pushed, indent=2) + "\n")
        return {"ui": comfy.ui_text(f"uploaded to {url}", unique_id), "result": (url,)}


def _read_marker(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
