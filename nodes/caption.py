"""QwenCaption: caption every clip with Qwen2.5-VL into ``captions.json``, resumably, and give the memory back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import comfy
from . import types as T
from .schema_widgets import param_widget

CAPTIONS_FILE = "captions.json"
# Qwen2.5-Omni models also hear each clip's sound and describe sound and speech (captions for audio-video LoRAs).
HUB_CAPTIONERS = (
    "Qwen/Qwen2.5-VL-7B-Instruct",
    "Qwen/Qwen2.5-VL-3B-Instruct",
    "Qwen/Qwen2.5-Omni-7B",
    "Qwen/Qwen2.5-Omni-3B",
)
DEVICES = ("auto", "cuda", "cpu")


def captioner_choices() -> list[str]:
    from ltx_train_lib.captioning import DEFAULT_MODEL

    hub = [DEFAULT_MODEL, *(m for m in HUB_CAPTIONERS if m != DEFAULT_MODEL)]
    return [*hub, "tiny", "tiny-omni", *comfy.captioner_folders()]


def resolve_captioner(choice: str, free_text: str) -> str:
    text = (free_text or "").strip().strip('"')
    if text:
        return str(Path(text).expanduser()) if text.startswith(("~", "/", ".")) else text
    local = comfy.captioner_folder_path(choice)
    return str(local) if local is not None else choice


def _prune_missing(captions_file: Path) -> int:
    """Drop entries whose media file is gone (clips of an earlier scene split): they would only be skipped later."""
    from ltx_train_lib.captions_io import caption_file_exists, read_captions_checked, write_captions

    if not caption_file_exists(captions_file):
        return 0
    read = read_captions_checked(captions_file, check_media=False, allow_empty=True)
    kept = [e for e in read.entries if Path(e.media_path).exists()]
    if len(kept) < len(read.entries):
        write_captions(captions_file, kept)
    return len(read.entries) - len(kept)


class QwenCaption:
    """Caption clips with Qwen2.5-VL (the reference trainer's captioner)."""

    CATEGORY = "LTX Trainer/dataset"
    SEARCH_ALIASES = ["caption videos", "auto caption", "qwen", "qwen2.5-vl", "describe video", "video captioning"]
    DESCRIPTION = (
        "Writes <work folder>/captions.json. Clips that already have a caption are kept (enable 'override' to "
        "redo them); the file is saved after every batch, so Cancel loses at most one batch. ComfyUI's models are "
        "unloaded first and the captioner's memory is released when the node ends."
    )
    RETURN_TYPES = (T.CAPTIONS,)
    RETURN_NAMES = ("captions",)
    OUTPUT_TOOLTIPS = ("The caption file and its media.",)
    FUNCTION = "caption"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        from ltx_train_lib.captioning import DEFAULT_INSTRUCTION, DEFAULT_MODEL, caption_media

        return {
            "required": {
                "videos": (T.VIDEOS, {"tooltip": "Clips to caption (from Split Scenes or Load Videos)."}),
                "model": (
                    captioner_choices(),
                    {
                        "default": DEFAULT_MODEL,
                        "tooltip": "Qwen2.5-VL model: a Hugging Face id (downloaded on first use), a folder in "
                        "models/LLM or models/ltx_trainer_captioners, or 'tiny' (random weights, tests only). "
                        "Qwen2.5-Omni models ('tiny-omni' for tests) also hear the clip's sound and describe "
                        "sound and speech.",
                    },
                ),
                "model_path": (
                    "STRING",
                    {"default": "", "tooltip": "Optional: another Hugging Face id or local model folder; replaces 'model'."},
                ),
                "instruction": (
                    "STRING",
                    {
                        "default": DEFAULT_INSTRUCTION,
                        "multiline": True,
                        "tooltip": "What the model is asked for each clip (images get the same text with 'image').",
                    },
                ),
                "override": param_widget(caption_media, "override", "BOOLEAN", "Re-caption clips that already have a caption."),
                "batch_size": param_widget(caption_media, "batch_size", "INT", "Clips per model call.", min=1, max=64),
                "fps": param_widget(
                    caption_media, "fps", "FLOAT", "Frames per second sampled from each clip.", min=0.1, max=30.0, step=0.1
                ),
                "max_new_tokens": param_widget(
                    caption_media, "max_new_tokens", "INT", "Longest caption, in tokens.", min=1, max=2048
                ),
                "use_8bit": param_widget(caption_media, "use_8bit", "BOOLEAN", "Load the model in 8-bit (CUDA + bitsandbytes)."),
                "device": (list(DEVICES), {"default": "auto", "tooltip": "Where the captioner runs; auto = CUDA if present."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def caption(
        self,
        videos: T.MediaSet,
        model: str,
        model_path: str,
        instruction: str,
        override: bool,
        batch_size: int,
        fps: float,
        max_new_tokens: int,
        use_8bit: bool,
        device: str,
        unique_id: str | None = None,
    ):
        from ltx_train_lib.captioning import DEFAULT_INSTRUCTION, CaptioningError, caption_media

        out = videos.work_dir / CAPTIONS_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        pruned = _prune_missing(out)
        bar = comfy.Progress(len(videos.files), unique_id, "captions")

        def progress(done: int, total: int, path: Path, caption: str | None) -> None:
            bar.update(done, total)
            if caption:
                comfy.progress_text(f"{done}/{total} {path.name}: {caption[:120]}", unique_id)
            comfy.throw_if_interrupted()  # Cancel after a batch: its captions are already saved

        comfy.unload_models()  # the captioner needs the memory ComfyUI's cached models hold
        try:
            report = caption_media(
                list(videos.files),
                out,
                model=resolve_captioner(model, model_path),
                override=override,
                batch_size=batch_size,
                fps=fps,
                max_new_tokens=max_new_tokens,
                use_8bit=use_8bit,
                device=None if device == "auto" else device,
                instruction=None if instruction.strip() in ("", DEFAULT_INSTRUCTION) else instruction.strip(),
                progress=progress,
            )
        finally:
            comfy.free_memory()  # caption_media closed its captioner; return the memory now, not at some later gc
        captioned = len(report.captioned) + len(report.already_captioned)
        if captioned == 0:
            reasons = "; ".join(p.reason for p in report.failed[:3])
            raise CaptioningError(f"QwenCaption: no clip could be captioned ({reasons}); check the clips")
        lines = [
            f"{len(report.captioned)} captioned, {len(report.already_captioned)} kept, {len(report.failed)} failed -> {out}"
        ]
        if pruned:
            lines.append(f"{pruned} caption(s) of clips that no longer exist were removed")
        lines += [f"failed: {p.reason}" for p in report.failed]
        lines += _caption_lines(out, videos)
        record = T.CaptionSet(captions_file=out, work_dir=videos.work_dir, name=videos.name, count=captioned)
        return {"ui": comfy.ui_text(lines, unique_id), "result": (record,)}


def _caption_lines(captions_file: Path, videos: T.MediaSet, limit: int = 200) -> list[str]:
    from ltx_train_lib.captions_io import read_captions_checked

    wanted = {p.resolve() for p in videos.files}
    entries = [e for e in read_captions_checked(captions_file, check_media=False).entries if Path(e.media_path).resolve() in wanted]
    lines = [f"{Path(e.media_path).name}: {e.caption}" for e in entries[:limit]]
    if len(entries) > limit:
        lines.append(f"... and {len(entries) - limit} more in {captions_file}")
    return lines
