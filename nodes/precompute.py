"""PrecomputeLatents: text embeddings and VAE latents of a captioned dataset into ``.precomputed/``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from . import comfy
from . import types as T
from .dataset import datasets_dir, folder_signature, slug
from .schema_widgets import (
    FROM_MODEL,
    component_widget,
    model_path_widget,
    model_widget,
    param_widget,
    resolve_component,
    resolve_model,
)

DEVICES = ("auto", "cuda", "cpu")
MAX_PREVIEWS = 8


def dataset_fingerprint(precomputed_dir: Path) -> str:
    """Changes when any cached sample's inputs change (media bytes, prompt, bucket, encoders): a training job on a
    changed dataset is a new job, not a resume of the old one."""
    from ltx_train_lib.precompute import MANIFEST_NAME, Manifest

    manifest = Manifest.load(precomputed_dir / MANIFEST_NAME)
    summary = {
        key: [
            (entry.get("latent") or {}).get("key"),
            (entry.get("condition") or {}).get("key"),
            (entry.get("media") or {}).get("sha256"),
        ]
        for key, entry in manifest.samples.items()
    }
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()[:16]


def decoded_previews(precomputed_dir: Path) -> dict[str, list]:
    """The decoded latents (videos, or PNGs for one-frame buckets) as UI previews."""
    from ltx_train_lib.precompute import DECODED_DIR

    folder = precomputed_dir / DECODED_DIR
    if not folder.is_dir():
        return {}
    videos = sorted(p for p in folder.rglob("*.mp4") if not p.name.startswith("."))[:MAX_PREVIEWS]
    if videos:
        return comfy.ui_videos([comfy.preview_entry(p) for p in videos])
    images = sorted(p for p in folder.rglob("*.png") if not p.name.startswith("."))[:MAX_PREVIEWS]
    return comfy.ui_images([comfy.preview_entry(p) for p in images]) if images else {}


def _cache_dir_for(captions_file: Path, name: str) -> Path:
    """Next to the caption file when that lies in the output folder (the reference's layout); otherwise in this
    pack's datasets folder, so nothing is written into ComfyUI's input folder."""
    from ltx_train_lib.precompute import PRECOMPUTED_DIR

    folder = captions_file.resolve().parent
    if folder.is_relative_to(comfy.output_dir().resolve()):
        return folder / PRECOMPUTED_DIR
    return datasets_dir() / slug(name or folder.name) / PRECOMPUTED_DIR


class PrecomputeLatents:
    """Encode captions (T5) and clips (VAE) once, so training reads small tensors."""

    CATEGORY = "LTX Trainer/dataset"
    DESCRIPTION = (
        "Computes the text embeddings and VAE latents of every captioned clip into .precomputed/ (the reference "
        "trainer's layout). Only changed samples are recomputed; bad clips are skipped with a reason. Takes the "
        "captions of a Qwen Caption node, or an existing caption file / dataset folder typed into 'dataset'."
    )
    RETURN_TYPES = (T.DATASET,)
    RETURN_NAMES = ("dataset",)
    OUTPUT_TOOLTIPS = ("The precomputed dataset, ready for Train LoRA.",)
    FUNCTION = "precompute"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        from ltx_train_lib.precompute import FRAME_SELECTIONS, RESHAPE_MODES, preprocess_dataset

        return {
            "required": {
                "dataset": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Used when 'captions' is not connected: a caption file (.json/.jsonl/.csv/.txt) or a "
                        "folder holding captions.json / dataset.json; relative to ComfyUI's input folder.",
                    },
                ),
                "resolution_buckets": (
                    "STRING",
                    {
                        "default": "768x768x49",
                        "tooltip": "Buckets WIDTHxHEIGHTxFRAMES separated by ';' (W,H multiples of 32, FRAMES = 8k+1). "
                        "Each clip goes to the nearest bucket it fits.",
                    },
                ),
                "model": model_widget("Base model whose VAE and text encoder encode the data; train with the same model."),
                "model_path": model_path_widget(),
                "trigger_word": param_widget(
                    preprocess_dataset, "id_token", "STRING", "Optional token put before every caption (e.g. 'zxq'); "
                    "use it in prompts to call up what was learned."
                ),
                "remove_llm_prefixes": param_widget(
                    preprocess_dataset, "remove_llm_prefixes", "BOOLEAN", "Strip openers like 'The video shows'."
                ),
                "decode_videos": param_widget(
                    preprocess_dataset,
                    "decode_videos",
                    "BOOLEAN",
                    "Decode the latents back to videos (shown on the node) to check crops and quality by eye.",
                ),
                "vae_tiling": param_widget(preprocess_dataset, "vae_tiling", "BOOLEAN", "Encode in tiles: less memory, slower."),
                "reshape_mode": param_widget(
                    preprocess_dataset, "reshape_mode", list(RESHAPE_MODES), "How clips are cropped to the bucket's aspect."
                ),
                "frame_selection": param_widget(
                    preprocess_dataset,
                    "frame_selection",
                    list(FRAME_SELECTIONS),
                    "Which frames of a longer clip are used: from the start, the middle, or a random window.",
                ),
                "batch_size": param_widget(preprocess_dataset, "batch_size", "INT", "Clips per VAE call.", min=1, max=64),
                "load_text_encoder_in_8bit": param_widget(
                    preprocess_dataset, "load_text_encoder_in_8bit", "BOOLEAN", "T5 in 8-bit (CUDA + bitsandbytes)."
                ),
                # Not "seed": the editor would add a "randomize after each run" control to it (and recompute).
                "precompute_seed": param_widget(
                    preprocess_dataset, "seed", "INT", "Seed for random crops/frames and latent sampling.", min=0, max=2**31 - 1
                ),
                "device": (list(DEVICES), {"default": "auto", "tooltip": "Where encoding runs; auto = CUDA if present."}),
                "dataset_name": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Work folder name for a dataset typed into 'dataset' (its cache goes to "
                        "output/ltx_trainer/datasets/<name>/); empty = the dataset folder's name.",
                    },
                ),
            },
            "optional": {
                "captions": (T.CAPTIONS, {"tooltip": "Captions from Qwen Caption; replaces 'dataset' when connected."}),
                "text_encoder": component_widget(
                    "text_encoders", "T5 text encoder: a file in models/text_encoders, or the one of the model."
                ),
                "vae": component_widget("vae", "VAE: a file or folder in models/vae, or the one of the model."),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, dataset: str = "", **_: Any) -> str:
        if not (dataset or "").strip():
            return ""  # fed by a Qwen Caption node: its own changes propagate
        try:
            from ltx_train_lib.precompute import resolve_dataset_file

            captions = resolve_dataset_file(comfy.resolve_input(dataset, "dataset"))
            st = captions.stat()
            return f"{captions}|{st.st_size}|{st.st_mtime_ns}|{folder_signature(captions.parent, True)}"
        except Exception as exc:  # noqa: BLE001 - the node itself reports the problem when it runs
            return f"error: {exc}"

    def precompute(
        self,
        dataset: str,
        resolution_buckets: str,
        model: str,
        model_path: str,
        trigger_word: str,
        remove_llm_prefixes: bool,
        decode_videos: bool,
        vae_tiling: bool,
        reshape_mode: str,
        frame_selection: str,
        batch_size: int,
        load_text_encoder_in_8bit: bool,
        precompute_seed: int,
        device: str,
        dataset_name: str,
        captions: T.CaptionSet | None = None,
        unique_id: str | None = None,
        text_encoder: str = FROM_MODEL,
        vae: str = FROM_MODEL,
    ):
        from ltx_train_lib.buckets import parse_buckets
        from ltx_train_lib.errors import DatasetError
        from ltx_train_lib.precompute import preprocess_dataset, resolve_dataset_file

        if captions is not None:
            captions_file, name = captions.captions_file, captions.name
            cache_dir = captions.work_dir / ".precomputed"
        elif dataset.strip():
            captions_file = resolve_dataset_file(comfy.resolve_input(dataset, "PrecomputeLatents.dataset"))
            name = dataset_name.strip() or captions_file.resolve().parent.name
            cache_dir = _cache_dir_for(captions_file, dataset_name.strip())
        else:
            raise DatasetError(
                "PrecomputeLatents: no data: connect 'captions' (from Qwen Caption) or type a caption file / dataset "
                "folder into 'dataset'"
            )
        model_source = resolve_model(model, model_path, "PrecomputeLatents.model")
        bar = comfy.Progress(1, unique_id, "precompute")

        def progress(done: int, total: int, message: str) -> None:
            bar.update(done, total)
            comfy.progress_text(f"{done}/{total} {message}", unique_id)
            comfy.throw_if_interrupted()  # every finished file is kept (atomic writes); a re-run reuses it

        comfy.unload_models()
        try:
            result = preprocess_dataset(
                captions_file,
                resolution_buckets,
                output_dir=cache_dir,
                model_source=model_source,
                id_token=trigger_word.strip() or None,
                remove_llm_prefixes=remove_llm_prefixes,
                decode_videos=decode_videos,
                vae_tiling=vae_tiling,
                reshape_mode=reshape_mode,
                frame_selection=frame_selection,
                batch_size=batch_size,
                device=None if device == "auto" else device,
                load_text_encoder_in_8bit=load_text_encoder_in_8bit,
                seed=precompute_seed,
                progress=progress,
                text_encoder_path=resolve_component("text_encoders", text_encoder, "PrecomputeLatents.text_encoder"),
                vae_path=resolve_component("vae", vae, "PrecomputeLatents.vae"),
            )
        finally:
            comfy.free_memory()
        if result.samples == 0:
            reasons = "; ".join(f"{k}: {r}" for k, r in result.skipped[:3]) or "the caption file lists no media"
            raise DatasetError(f"PrecomputeLatents: no sample could be encoded ({reasons}); fix the dataset or the buckets")
        record = T.PrecomputedSet(
            precomputed_dir=result.output_dir,
            captions_file=captions_file,
            model_source=model_source,
            buckets=tuple(str(b) for b in parse_buckets(resolution_buckets)),
            samples=result.samples,
            fingerprint=dataset_fingerprint(result.output_dir),
            trigger_word=trigger_word.strip() or None,
            name=name,
        )
        ui = {**decoded_previews(result.output_dir), **comfy.ui_text(result.summary(), unique_id)}
        return {"ui": ui, "result": (record,)}
