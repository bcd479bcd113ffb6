"""Captioning videos and images with Qwen2.5-VL, the reference trainer's captioner.

Follows the reference (`reference/ltx-video-trainer.md` §5.2): ``Qwen/Qwen2.5-VL-7B-Instruct``, one user turn
``[media, instruction]`` through the model's chat template, frames sampled at 3 fps at a very low per-frame
resolution (16..64 tokens' worth of pixels), greedy decoding of up to 200 tokens, and the same caption cleanup.
Frames are read with ``ltx_train_lib.media`` (PyAV: rotation and variable frame rate handled) and handed to
transformers' own Qwen2.5-VL processor with their true sampling rate, so the model sees the same time spacing as
when the processor reads the file itself.

Captions that hear: a Qwen2.5-Omni model (``Qwen/Qwen2.5-Omni-7B``/``-3B``, a local Omni folder, or ``tiny-omni``)
is chosen by name or by its config and gets each clip's sound with its frames (16 kHz mono from ``audio.read_audio``,
interleaved with the video tokens by transformers' ``Qwen2_5OmniProcessor``), and is asked to describe sound and
speech too; only the text-generating "thinker" runs (no speech output). Qwen2.5-VL stays the default.

``caption_media`` is resumable: it saves the caption file after every batch and, when run again, captions only
the media that have no caption yet. Bad media are reported per file and skipped. Before the model loads, the caption
file's folder is checked (writable, some free space); an error while saving (disk full, read-only folder) stops the
run with one ``OutputError`` and leaves the file as the last successful save wrote it.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx_train_lib.captions_io import (
    CaptionEntry,
    CaptionProblem,
    caption_file_exists,
    caption_format,
    read_captions_checked,
    txt_file_pair,
    write_captions,
)
from ltx_train_lib.errors import DatasetError, LtxTrainError, ModelLoadError
from ltx_train_lib.fileio import check_writable_dir, translate_write_errors

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
DEFAULT_INSTRUCTION = "Shortly describe the content of this video in two sentences."
# The reference asks the same question of images; saying "image" keeps the model from inventing motion.
DEFAULT_IMAGE_INSTRUCTION = "Shortly describe the content of this image in two sentences."
DEFAULT_FPS = 3.0
# Captions that hear (Qwen2.5-Omni): asked about the sound as well, for videos that have sound.
OMNI_MODEL = "Qwen/Qwen2.5-Omni-7B"
DEFAULT_AUDIO_INSTRUCTION = (
    "Shortly describe the content of this video in two sentences, including what is heard: speech (quote it), "
    "music and other sounds."
)
# The Omni processor pads or cuts every sound to Whisper's 30-second window; longer clips are heard up to here.
OMNI_AUDIO_SECONDS = 30.0
OMNI_AUDIO_RATE = 16000  # Whisper's feature extractor rate, which every Qwen2.5-Omni processor uses
DEFAULT_MAX_NEW_TOKENS = 200
DEFAULT_EXTENSIONS = ("mp4", "avi", "mov", "mkv", "webm", "jpg", "jpeg", "png")
# Per-frame pixel budget of the reference: 16..64 vision tokens (28x28 px each after the 2x2 merge).
MIN_PIXELS = 16 * 28 * 28
MAX_PIXELS = 64 * 28 * 28
# Rough size of one saved entry (a 200-token caption and its path), for the free-space check before captioning.
ENTRY_BYTES_ESTIMATE = 2048
CAPTION_FOLDER = "caption file folder"
# Frames kept per video. Longer videos are sampled more sparsely (not cut short) so the caption covers the whole
# clip, while host memory stays bounded (frames are decoded at full size before the processor shrinks them).
DEFAULT_MAX_FRAMES = 128

# The reference's cleanup phrases: "{The|This} {kind} {verb} " (each combination removed once).
_OPENERS = [
    f"{start} {kind} {verb} "
    for start, kind, verb in itertools.product(
        ("The", "This"),
        ("video", "image", "scene", "animated sequence"),
        ("displays", "shows", "features", "depicts", "presents", "showcases", "captures"),
    )
]


class CaptioningError(LtxTrainError):
    """Captioning cannot continue (e.g. the model ran out of memory)."""


def clean_caption(caption: str) -> str:
    """The reference's cleanup: remove the first occurrence of each "The video shows "-style phrase.

    Unlike the reference, the word that then starts the caption (or a sentence) is capitalised, so
    "The video shows a cat." becomes "A cat." rather than "a cat.".
    """
    for opener in _OPENERS:
        at = caption.find(opener)
        if at < 0:
            continue
        rest = caption[at + len(opener) :]
        if not caption[:at].strip() or caption[:at].rstrip().endswith((".", "!", "?")):
            rest = rest[:1].upper() + rest[1:]
        caption = caption[:at] + rest
    return caption.strip()


# ----------------------------------------------------------------------------------------------- model location


def resolve_captioner_model(model: str | Path) -> str:
    """``"tiny"``/``"tiny-omni"`` -> the cached tiny random-weight model folder; an existing folder -> its path; else
    a hub id."""
    from ltx_train_lib.models.tiny_qwen import TINY_QWEN_ALIAS, tiny_qwen_vl_dir
    from ltx_train_lib.tiny_omni import TINY_OMNI_ALIAS, tiny_omni_dir

    text = str(model).strip()
    if not text:
        raise ModelLoadError(
            f"captioning model is empty. Use '{DEFAULT_MODEL}', '{OMNI_MODEL}' (hears sound), a local folder, 'tiny' "
            f"or '{TINY_OMNI_ALIAS}'."
        )
    if text == TINY_QWEN_ALIAS:
        return str(tiny_qwen_vl_dir())
    if text == TINY_OMNI_ALIAS:
        return str(tiny_omni_dir())
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path}: not a Qwen2.5-VL model folder (no config.json). Pass a Qwen2.5-VL or Qwen2.5-Omni folder "
                f"saved by save_pretrained / downloaded with `hf download {DEFAULT_MODEL} --local-dir FOLDER`."
            )
        return str(path)
    return text


def captioner_hears(model: str | Path) -> bool:
    """True for a Qwen2.5-Omni captioner (it takes the sound): ``tiny-omni``, a folder whose config.json says
    ``qwen2_5_omni``, or a hub id with "Omni" in its name."""
    import json

    from ltx_train_lib.tiny_omni import TINY_OMNI_ALIAS

    text = str(model).strip()
    if text == TINY_OMNI_ALIAS:
        return True
    config = Path(text).expanduser() / "config.json"
    if config.is_file():
        try:
            return str(json.loads(config.read_text(encoding="utf-8")).get("model_type", "")).startswith("qwen2_5_omni")
        except (OSError, ValueError):
            return False  # the loader says what is wrong with the folder
    return "omni" in Path(text).name.lower()


def _pick_device(device: str | None) -> str:
    import torch

    if device:
        return str(device)
    return "cuda" if torch.cuda.is_available() else "cpu"


def _pick_dtype(dtype: str | Any, device: str):
    import torch

    if dtype is None or dtype == "auto":
        # bf16 on GPUs as the reference; float32 on CPU, where bf16 matmuls are slow or unsupported.
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
        "float32": torch.float32,
        "fp32": torch.float32,
    }
    if str(dtype) not in names:
        raise ModelLoadError(f"captioning dtype '{dtype}' is unknown. Use one of auto, {', '.join(names)}.")
    return names[str(dtype)]


def _quantization_config(use_8bit: bool, device: str, model: str):
    if not use_8bit:
        return None
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise ModelLoadError(
            f"8-bit loading of {model} needs a CUDA GPU (bitsandbytes), but the device is '{device}'"
            f"{'' if torch.cuda.is_available() else ' and no CUDA GPU is available'}. "
            "Drop --use-8bit, or run on a CUDA GPU."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ModelLoadError(
            f"8-bit loading of {model} needs the bitsandbytes package, which is not installed. "
            "Run `pip install bitsandbytes`, or drop --use-8bit."
        ) from exc
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_8bit=True)


# ------------------------------------------------------------------------------------------------------ captioner


@dataclass
class MediaSample:
    """One media file read and ready for the processor."""

    path: Path
    kind: str  # "video" | "image"
    pixels: Any  # video: uint8 [F,H,W,3]; image: uint8 [H,W,3]
    fps: float = 0.0
    audio: Any = None  # float32 [N] mono at the captioner's sample rate, for captioners that hear; None = no sound


def read_media(
    path: str | Path,
    *,
    fps: float = DEFAULT_FPS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    audio_sample_rate: int | None = None,
) -> MediaSample:
    """Read a video (frames resampled to ``fps``, at most ``max_frames``) or an image, ready for the processor.

    ``audio_sample_rate``: also read the video's sound (mono, the first ``OMNI_AUDIO_SECONDS``), for a captioner
    that hears. Raises ``DatasetError`` naming the file, the problem and the fix for unreadable, corrupt or
    audio-only media.
    """
    from ltx_train_lib import audio, media

    path = Path(path)
    if media.is_image(path):
        return MediaSample(path, "image", media.load_image(path))
    if not media.is_video(path):
        raise DatasetError(f"{path}: not a video or image file type. Remove it or rename it with its real type.")
    info = media.probe_media(path)
    if info.duration > 0 and info.duration * fps > max_frames:
        fps = max_frames / info.duration  # spread the frame budget over the whole clip rather than cut it short
    frames, out_fps = media.read_video_frames(path, fps=fps, max_frames=max_frames)
    sound = None
    if audio_sample_rate is not None and info.has_audio:
        seconds = min(info.duration if info.duration > 0 else len(frames) / out_fps, OMNI_AUDIO_SECONDS)
        clip = audio.read_audio(path, duration=seconds, sample_rate=audio_sample_rate, channels=1)
        sound = None if clip is None else clip.samples[0]
    return MediaSample(path, "video", frames, out_fps, sound)


class QwenCaptioner:
    """A loaded Qwen2.5-VL model and processor. Call ``close()`` (or use ``with``) to give the memory back."""

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: str | Any = "auto",
        use_8bit: bool = False,
        instruction: str | None = None,
        fps: float = DEFAULT_FPS,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        max_frames: int = DEFAULT_MAX_FRAMES,
        min_pixels: int = MIN_PIXELS,
        max_pixels: int = MAX_PIXELS,
        clean: bool = True,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.model_name = str(model)
        self.instruction = instruction
        self.fps = float(fps)
        self.max_new_tokens = int(max_new_tokens)
        self.max_frames = int(max_frames)
        self.size = {"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)}
        self.clean = clean
        self.device = _pick_device(device)
        self.model_path = resolve_captioner_model(model)
        self._model, self._processor = self._load(dtype, use_8bit)

    # -- loading / releasing

    hears = False  # takes the sound of videos (OmniCaptioner)
    audio_sample_rate: int | None = None  # the rate the sound is read at, for a captioner that hears

    def _from_pretrained(self, **kwargs):
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration.from_pretrained(self.model_path, **kwargs)

    def _load(self, dtype, use_8bit: bool):
        from transformers import AutoProcessor

        torch_dtype = _pick_dtype(dtype, self.device)
        quantization = _quantization_config(use_8bit, self.device, self.model_name)
        offline_hint = (
            " Hugging Face downloads are switched off (HF_HUB_OFFLINE); download it first on a machine with access."
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
            else ""
        )
        try:
            processor = AutoProcessor.from_pretrained(self.model_path)
            model = self._from_pretrained(
                dtype=torch_dtype,
                quantization_config=quantization,
                # Load straight onto the device (no full copy in host RAM first); bitsandbytes requires it too.
                device_map=self.device,
            ).eval()
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"captioning model '{self.model_name}' could not be loaded ({exc}).{offline_hint} "
                f"Use a Hugging Face repo id such as {DEFAULT_MODEL} (downloaded on first use, ~16 GB) or "
                f"{OMNI_MODEL} (hears sound, ~22 GB), a local Qwen2.5-VL/Omni folder, or 'tiny'/'tiny-omni' for "
                "the offline random-weight test models."
            ) from exc
        # Left padding: generation appends after the last position, which must be a real token for every row.
        processor.tokenizer.padding_side = "left"
        return model, processor

    @property
    def model(self):
        if self._model is None:
            raise CaptioningError(f"captioner for {self.model_name} is closed. Create a new QwenCaptioner.")
        return self._model

    @property
    def closed(self) -> bool:
        return self._model is None

    def close(self) -> None:
        """Drop the model and processor and return their memory (host and GPU). Safe to call twice."""
        if self._model is None:
            return
        self._model = None
        self._processor = None
        gc.collect()
        with contextlib.suppress(Exception):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def __enter__(self) -> QwenCaptioner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- media

    def read_media(self, path: str | Path) -> MediaSample:
        """Read a video (frames at this captioner's ``fps``) or an image; bad media raise ``DatasetError``."""
        return read_media(path, fps=self.fps, max_frames=self.max_frames, audio_sample_rate=self.audio_sample_rate)

    def _instruction_for(self, kind: str) -> str:
        if self.instruction:
            return self.instruction
        return DEFAULT_IMAGE_INSTRUCTION if kind == "image" else DEFAULT_INSTRUCTION

    # -- captioning

    def caption_samples(self, samples: Sequence[MediaSample]) -> list[str]:
        """Caption already-read media in one batch (one ``generate`` call)."""
        import torch
        from transformers.video_utils import VideoMetadata

        if not samples:
            return []
        processor, model = self._processor, self.model
        texts, images, videos, metadata = [], [], [], []
        for s in samples:
            messages = [
                {"role": "user", "content": [{"type": s.kind}, {"type": "text", "text": self._instruction_for(s.kind)}]}
            ]
            texts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
            if s.kind == "image":
                images.append(s.pixels)
            else:
                videos.append(s.pixels)
                # The frames are already sampled; their true rate sets the model's temporal positions.
                metadata.append(VideoMetadata(total_num_frames=len(s.pixels), fps=s.fps))
        kwargs: dict[str, Any] = {}
        if images:
            kwargs["images"] = images
            kwargs["images_kwargs"] = {"size": self.size}
        if videos:
            kwargs.update(videos=videos, video_metadata=metadata, do_sample_frames=False)
            kwargs["videos_kwargs"] = {"size": self.size, "cap_pixels_per_frame": True}
        inputs = processor(text=texts, padding=True, return_tensors="pt", **kwargs).to(model.device)
        try:
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        except torch.cuda.OutOfMemoryError as exc:
            raise CaptioningError(
                f"the GPU ran out of memory captioning {', '.join(s.path.name for s in samples)} with "
                f"{self.model_name}. Use --batch-size 1, --use-8bit, a lower --fps, or free GPU memory."
            ) from exc
        generated = out[:, inputs["input_ids"].shape[1] :]
        captions = processor.batch_decode(generated, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [clean_caption(c) if self.clean else c.strip() for c in captions]

    def caption(self, paths: Sequence[str | Path]) -> list[str]:
        """Caption media files in one batch; bad media raise ``DatasetError`` (``caption_media`` skips them)."""
        self.model  # noqa: B018 - fail on a closed captioner before spending time reading media
        return self.caption_samples([self.read_media(p) for p in paths])

    def caption_one(self, path: str | Path) -> str:
        return self.caption([path])[0]


class OmniCaptioner(QwenCaptioner):
    """A Qwen2.5-Omni captioner: each video's frames and sound go in together, and the caption covers both.

    Loads ``Qwen2_5OmniForConditionalGeneration`` without its speech-output talker (``enable_audio_output=False``)
    and generates text with its thinker. The sound is passed as decoded samples (``audio_from_video_indices``), so
    the processor needs no torchcodec; videos without sound are captioned from their frames alone.
    Media are captioned one per ``generate`` call: the processor takes one frame rate per call, and the rate places
    the sound's tokens between the video's.
    """

    hears = True

    def _from_pretrained(self, **kwargs):
        from transformers import Qwen2_5OmniForConditionalGeneration

        return Qwen2_5OmniForConditionalGeneration.from_pretrained(self.model_path, enable_audio_output=False, **kwargs)

    def _load(self, dtype, use_8bit: bool):
        model, processor = super()._load(dtype, use_8bit)
        self.audio_sample_rate = int(processor.feature_extractor.sampling_rate)
        # The thinker generates; the folder's generation settings (e.g. the tiny model's suppressed tokens) are on
        # the outer model, so they are passed to each call.
        generation = model.generation_config
        self._generate_kwargs = {"suppress_tokens": generation.suppress_tokens} if generation.suppress_tokens else {}
        return model, processor

    def _instruction_for(self, kind: str, has_audio: bool = False) -> str:
        if self.instruction:
            return self.instruction
        if kind == "video" and has_audio:
            return DEFAULT_AUDIO_INSTRUCTION
        return super()._instruction_for(kind)

    def prepare_inputs(self, sample: MediaSample):
        """The processor's tensors for one sample (frames, and sound when it has some), on the model's device."""
        from transformers.video_utils import VideoMetadata

        processor = self._processor
        has_audio = sample.kind == "video" and sample.audio is not None
        content = [{"type": sample.kind}, {"type": "text", "text": self._instruction_for(sample.kind, has_audio)}]
        text = processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
        kwargs: dict[str, Any] = {}
        if sample.kind == "image":
            kwargs.update(images=[sample.pixels], images_kwargs={"size": self.size})
        else:
            kwargs.update(
                videos=[sample.pixels],
                video_metadata=[VideoMetadata(total_num_frames=len(sample.pixels), fps=sample.fps)],
                do_sample_frames=False,
                # fps: the processor times the video tokens with it, to interleave the sound's tokens with them.
                videos_kwargs={"size": self.size, "cap_pixels_per_frame": True, "fps": sample.fps},
            )
            if has_audio:
                kwargs.update(audio=[sample.audio], audio_from_video_indices=[0], load_audio_from_video=True)
        inputs = processor(text=[text], padding=True, return_tensors="pt", **kwargs)
        return inputs.to(self.model.device), has_audio

    def caption_samples(self, samples: Sequence[MediaSample]) -> list[str]:
        import torch

        captions = []
        for sample in samples:
            inputs, has_audio = self.prepare_inputs(sample)
            try:
                with torch.inference_mode():
                    out = self.model.thinker.generate(
                        **inputs,
                        use_audio_in_video=has_audio,
                        max_new_tokens=self.max_new_tokens,
                        do_sample=False,
                        **self._generate_kwargs,
                    )
            except torch.cuda.OutOfMemoryError as exc:
                raise CaptioningError(
                    f"the GPU ran out of memory captioning {sample.path.name} with {self.model_name}. Use --use-8bit, "
                    "a lower --fps, or free GPU memory."
                ) from exc
            generated = out[:, inputs["input_ids"].shape[1] :]
            text = self._processor.batch_decode(generated, skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
            captions.append(clean_caption(text) if self.clean else text.strip())
        return captions


def make_captioner(model: str | Path = DEFAULT_MODEL, **kwargs: Any) -> QwenCaptioner:
    """A captioner for ``model``: ``OmniCaptioner`` (hears the sound) for Qwen2.5-Omni models, else ``QwenCaptioner``."""
    cls = OmniCaptioner if captioner_hears(model) else QwenCaptioner
    return cls(model, **kwargs)


# ------------------------------------------------------------------------------------------- folder -> captions


@dataclass
class MediaProblem:
    path: Path
    reason: str


@dataclass
class CaptionReport:
    output_path: Path
    total: int = 0  # media found in the input
    captioned: list[Path] = field(default_factory=list)
    already_captioned: list[Path] = field(default_factory=list)
    failed: list[MediaProblem] = field(default_factory=list)
    existing_problems: list[CaptionProblem] = field(default_factory=list)  # found in the existing caption file

    @property
    def ok(self) -> bool:
        return not self.failed


def default_output_path(input_path: str | Path) -> Path:
    """``<folder>/captions.json`` for a folder, ``<file stem>.captions.json`` next to a single file."""
    input_path = Path(input_path)
    if input_path.is_dir():
        return input_path / "captions.json"
    return input_path.with_suffix(".captions.json")


def _normalise_extensions(extensions: Sequence[str] | str) -> set[str]:
    from ltx_train_lib import media

    if isinstance(extensions, str):
        extensions = extensions.split(",")
    wanted = {"." + e.strip().lower().lstrip(".") for e in extensions if e.strip()}
    supported = media.VIDEO_EXTENSIONS | media.IMAGE_EXTENSIONS
    unknown = sorted(wanted - supported)
    if unknown:
        raise DatasetError(
            f"extensions {', '.join(unknown)} are not supported for captioning. "
            f"Use some of {', '.join(sorted(e.lstrip('.') for e in supported))}."
        )
    return wanted


def collect_media(
    inputs: str | Path | Sequence[str | Path],
    extensions: Sequence[str] | str = DEFAULT_EXTENSIONS,
    recursive: bool = False,
) -> list[Path]:
    """Media files from a folder, a file, or a list of both, in a stable order, without repeats."""
    from ltx_train_lib import media

    wanted = _normalise_extensions(extensions)
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    found: list[Path] = []
    for item in items:
        item = Path(item)
        if item.is_dir():
            found.extend(p for p in media.list_media(item, recursive=recursive) if p.suffix.lower() in wanted)
        elif item.is_file():
            found.append(item)
        else:
            raise DatasetError(f"{item}: no such file or folder. Check the path to the media to caption.")
    seen: set[Path] = set()
    out = []
    for p in found:
        key = Path(os.path.normpath(os.path.abspath(p)))
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def _caption_files(path: Path) -> tuple[Path, ...]:
    """The file(s) a caption file is stored in (the .txt format is a pair)."""
    return txt_file_pair(path) if caption_format(path) == ".txt" else (path,)


def _batches(items: Sequence[Path], size: int) -> Iterator[list[Path]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


ProgressFn = Callable[[int, int, Path, str | None], None]


def caption_media(
    inputs: str | Path | Sequence[str | Path],
    output_path: str | Path | None = None,
    *,
    model: str | Path = DEFAULT_MODEL,
    captioner: QwenCaptioner | None = None,
    override: bool = False,
    extensions: Sequence[str] | str = DEFAULT_EXTENSIONS,
    recursive: bool = False,
    batch_size: int = 1,
    device: str | None = None,
    dtype: str | Any = "auto",
    use_8bit: bool = False,
    instruction: str | None = None,
    fps: float = DEFAULT_FPS,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    clean: bool = True,
    progress: ProgressFn | None = None,
) -> CaptionReport:
    """Caption every media file of ``inputs`` into ``output_path`` (format from its extension).

    Resumable: media that already have a non-empty caption in ``output_path`` are skipped unless ``override``;
    entries for media outside ``inputs`` are kept. The file is rewritten atomically after every batch, so an
    interruption loses at most one batch. Bad media are reported in ``CaptionReport.failed`` and skipped.
    The model is loaded only when something needs captioning and released before returning; a ``captioner``
    passed in is used as is and left open (its owner closes it).
    ``progress(done, total, path, caption_or_None)`` is called after each media file.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if output_path is None:
        if not isinstance(inputs, (str, Path)):
            raise DatasetError("several inputs were given without an output file. Pass output_path (-o).")
        output_path = default_output_path(inputs)
    output_path = Path(output_path)
    caption_format(output_path)  # fail on an unknown extension before any work
    media_files = collect_media(inputs, extensions, recursive)
    report = CaptionReport(output_path=output_path, total=len(media_files))

    entries: list[CaptionEntry] = []
    if caption_file_exists(output_path):
        existing = read_captions_checked(output_path, check_media=False, allow_empty=True)
        entries = existing.entries
        report.existing_problems = [p for p in existing.problems if p.kind in ("bad_entry", "duplicate_media")]
    index = {e.media_path: i for i, e in reversed(list(enumerate(entries)))}  # first entry wins on duplicates

    todo = []
    for path in media_files:
        i = index.get(path)
        if i is not None and entries[i].caption.strip() and not override:
            report.already_captioned.append(path)
        else:
            todo.append(path)
    if not todo:
        return report
    # Before the model loads (minutes, GBs): the file is rewritten next to itself, so the old and the new copy
    # are on the disk together for a moment.
    old_size = sum(f.stat().st_size for f in _caption_files(output_path) if f.is_file())
    check_writable_dir(output_path.parent, CAPTION_FOLDER, 2 * old_size + ENTRY_BYTES_ESTIMATE * len(todo))
    saved_hint = f"{output_path} keeps the captions saved before; run again to continue."

    own_captioner = captioner is None
    read_fps = captioner.fps if captioner is not None else fps
    read_max_frames = captioner.max_frames if captioner is not None else max_frames
    # The sound is read only for a captioner that hears (before its model loads: at the rate all Omni models use).
    # getattr: any object with caption_samples/fps/max_frames can be passed in (tests pass stand-ins).
    hears = getattr(captioner, "hears", False) if captioner is not None else captioner_hears(model)
    read_rate = getattr(captioner, "audio_sample_rate", None) or (OMNI_AUDIO_RATE if hears else None)
    done = len(report.already_captioned)
    try:
        for batch in _batches(todo, batch_size):
            samples = []
            for path in batch:
                try:
                    samples.append(
                        read_media(path, fps=read_fps, max_frames=read_max_frames, audio_sample_rate=read_rate)
                    )
                except DatasetError as exc:
                    report.failed.append(MediaProblem(path, str(exc)))
                except Exception as exc:  # noqa: BLE001 - a decoder crash on one file must not stop the others
                    report.failed.append(MediaProblem(path, f"{path}: cannot be read ({type(exc).__name__}: {exc})"))
            if samples and captioner is None:
                # Loaded only once some media is readable: a folder of bad files costs no model load.
                captioner = make_captioner(
                    model,
                    device=device,
                    dtype=dtype,
                    use_8bit=use_8bit,
                    instruction=instruction,
                    fps=fps,
                    max_new_tokens=max_new_tokens,
                    max_frames=max_frames,
                    clean=clean,
                )
            captions = captioner.caption_samples(samples) if samples else []
            for sample, caption in zip(samples, captions, strict=True):
                if not caption.strip():
                    report.failed.append(
                        MediaProblem(
                            sample.path,
                            f"{sample.path}: the model returned an empty caption. "
                            "Re-run with another --instruction or a larger --max-new-tokens.",
                        )
                    )
                    continue
                entry = CaptionEntry(caption=caption, media_path=sample.path)
                if sample.path in index:
                    entries[index[sample.path]] = entry
                else:
                    index[sample.path] = len(entries)
                    entries.append(entry)
                report.captioned.append(sample.path)
            if captions:
                with translate_write_errors(output_path.parent, CAPTION_FOLDER, saved_hint):
                    write_captions(output_path, entries)
            by_path = dict(zip((s.path for s in samples), captions, strict=True))
            for path in batch:
                done += 1
                if progress is not None:
                    progress(done, report.total, path, by_path.get(path))
    finally:
        if own_captioner and captioner is not None:
            captioner.close()
    return report
