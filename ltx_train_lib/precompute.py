"""Text embeddings and VAE latents into ``.precomputed/``, incrementally and without mispairing.

Layout and tensor schema are the reference trainer's (reference/ltx-video-trainer.md §3.2-3.3, §5.4), so a cache
made here loads in the reference trainer and vice versa::

    <dataset dir>/.precomputed/
      latents/<media path>.pt        {"latents": bf16 [F'*H'*W', C], "num_frames": F', "height": H', "width": W', "fps"}
      conditions/<media path>.pt     {"prompt_embeds": bf16 [256, D], "prompt_attention_mask": bool [256]}
      reference_latents/<media path>.pt   IC-LoRA only (reference_column): the reference video of the sample,
                                     encoded at the target's bucket, frames and crop; same schema as latents/
      decoded_videos/<media path>.mp4|.png    (decode_videos=True, to check by eye)
      decoded_reference_videos/<media path>.mp4|.png    (decode_videos=True with reference_column)
      .manifest.json                 what each cached file was made from (media hash, caption, settings)

``<media path>`` is the media file's path relative to the caption file's folder with its suffix replaced, as the
reference names them. Every sample is keyed by that path from start to end: no parallel lists, so dropping a bad
clip can never shift captions onto other clips' latents (the reference's issue #59).

Invariants kept at every instant, so a crash or a Cancel never leaves a cache the trainer would misread:
- every ``.pt`` is written atomically (temp file + rename);
- a sample's condition is written before its latents, and its latents are deleted before its condition, so a
  latents file always has its condition (the trainer refuses latents without one); likewise its reference
  latents (IC-LoRA) are written before and deleted after its latents;
- the manifest only records a file after the file is on disk, so it can lag behind the files (costing a recompute)
  but never claims a file is current when it is not.
At the end of a completed run, latents and condition (and reference latents, with a reference column) are all
present or all absent for every sample, and files of samples that left the dataset (or turned bad) are removed. A
run without a reference column removes reference latents: they could no longer be trusted to match their targets.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltx_train_lib.buckets import Bucket, nearest_bucket, parse_buckets
from ltx_train_lib.errors import ConfigError, DatasetError
from ltx_train_lib.fileio import atomic_path, write_text_atomic
from ltx_train_lib.models.ltxv.text import TEXT_MAX_TOKENS

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ltx_train_lib.media import MediaInfo

logger = logging.getLogger(__name__)

PRECOMPUTED_DIR = ".precomputed"
LATENTS_DIR = "latents"
CONDITIONS_DIR = "conditions"
REFERENCE_LATENTS_DIR = "reference_latents"  # the reference trainer's folder name (its config default differs, §11.8)
DECODED_DIR = "decoded_videos"
DECODED_REFERENCE_DIR = "decoded_reference_videos"
MANIFEST_NAME = ".manifest.json"
LOCK_NAME = ".lock"
# Bump when what a cached file means changes (it invalidates every entry of older manifests).
MANIFEST_VERSION = 1
# Caption files looked for when a folder is given instead of a file (captions.json is what the pipeline writes,
# dataset.json what the reference's caption_videos.py writes by default).
FOLDER_CAPTION_FILES = ("captions.json", "dataset.json")
RESHAPE_MODES = ("center", "random")
FRAME_SELECTIONS = ("first", "center", "random")
IMAGE_FPS = 1.0  # the reference's value for images (commit 7687249; fps <= 0 broke RoPE scaling, issue #43)
MANIFEST_SAVE_INTERVAL_S = 5.0

# Leading phrases captioning LLMs add, removed by remove_llm_prefixes (the reference's list, §3.3).
COMMON_BEGINNING_PHRASES: tuple[str, ...] = (
    "This video",
    "The video",
    "This clip",
    "The clip",
    "The animation",
    "This image",
    "The image",
    "This picture",
    "The picture",
)
COMMON_CONTINUATION_WORDS: tuple[str, ...] = (
    "shows",
    "depicts",
    "features",
    "captures",
    "highlights",
    "introduces",
    "presents",
)
COMMON_LLM_START_PHRASES: tuple[str, ...] = (
    "In the video,",
    "In this video,",
    "In this video clip,",
    "In the clip,",
    "Caption:",
    *(f"{b} {c}" for b in COMMON_BEGINNING_PHRASES for c in COMMON_CONTINUATION_WORDS),
)

ProgressFn = Callable[[int, int, str], None]


# ----------------------------------------------------------------------------------------------------------- result


@dataclass
class PreprocessResult:
    """What a run did. Sample names are media paths relative to the caption file's folder."""

    output_dir: Path
    processed: list[str] = field(default_factory=list)  # latents and/or condition (re)computed
    reused: list[str] = field(default_factory=list)  # both taken from the cache as they were
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (media path or caption file, reason)
    removed: list[str] = field(default_factory=list)  # cache entries deleted: their media left the dataset
    latents_computed: list[str] = field(default_factory=list)
    conditions_computed: list[str] = field(default_factory=list)
    references_computed: list[str] = field(default_factory=list)  # IC-LoRA reference latents (re)computed
    decoded: list[str] = field(default_factory=list)
    buckets: dict[str, str] = field(default_factory=dict)  # sample -> bucket "WxHxF" it was encoded at

    @property
    def ok(self) -> bool:
        return not self.skipped

    @property
    def samples(self) -> int:
        return len(self.processed) + len(self.reused)

    def summary(self) -> str:
        computed = f"{len(self.latents_computed)} latents, {len(self.conditions_computed)} captions"
        if self.references_computed:
            computed += f", {len(self.references_computed)} references"
        parts = [
            f"{self.samples} sample(s) ready in {self.output_dir}",
            f"{len(self.processed)} computed ({computed})",
            f"{len(self.reused)} reused from the cache",
        ]
        if self.removed:
            parts.append(f"{len(self.removed)} stale removed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        text = "; ".join(parts) + "."
        if self.skipped:
            text += "\nSkipped:\n" + "\n".join(f"  - {path}: {reason}" for path, reason in self.skipped)
        return text


# ---------------------------------------------------------------------------------------------------------- captions


def clean_llm_prefix(text: str) -> str:
    """Strip one leading phrase such as "The video shows" (the reference strips one, then whitespace)."""
    text = text.strip()
    for phrase in COMMON_LLM_START_PHRASES:
        if text.startswith(phrase):
            return text.removeprefix(phrase).strip()
    return text


def build_prompt(caption: str, id_token: str | None = None, remove_llm_prefixes: bool = False) -> str:
    """The text that is embedded: prefix removal first, then the trigger word, as the reference does."""
    text = clean_llm_prefix(caption) if remove_llm_prefixes else caption.strip()
    if id_token and id_token.strip() and text:
        text = f"{id_token.strip()} {text}"
    return text


# ------------------------------------------------------------------------------------------------------- model math


def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str]) -> list[dict[str, torch.Tensor]]:
    """T5 embeddings as the reference computes them: 256 tokens, padded to max length, mask as bool.

    The encoder is called without the attention mask, as the reference and diffusers' LTX pipelines do, so the
    embeddings match what they produce at inference time.
    """
    import torch

    inputs = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=TEXT_MAX_TOKENS,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    device = next(text_encoder.parameters()).device
    with torch.inference_mode():
        embeds = text_encoder(inputs.input_ids.to(device))[0]
    mask = inputs.attention_mask.bool()
    # clone(): a row of the batch tensor would otherwise be saved with the whole batch's storage.
    return [
        {
            "prompt_embeds": embeds[i].to("cpu", torch.bfloat16).clone(),
            "prompt_attention_mask": mask[i].clone(),
        }
        for i in range(len(prompts))
    ]


def frames_to_pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 [F,H,W,3] -> float [3,F,H,W] in [-1, 1] (the reference's Normalize(0.5, 0.5))."""
    import torch

    return torch.from_numpy(frames).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)


def encode_latents(vae, pixels: torch.Tensor, generators: Sequence[torch.Generator]) -> list[dict[str, Any]]:
    """VAE-encode a batch [B,3,F,H,W] of one shape: a sample of the latent distribution (as the reference does,
    not the mode), normalised per channel and packed to [F'*H'*W', C] tokens.

    One CPU generator per sample, so each sample's noise depends only on its own seed, not on the batch it is in
    or on the device.
    """
    import torch

    from ltx_train_lib.models.ltxv.geometry import normalize_latents, pack_latents

    param = next(vae.parameters())
    with torch.inference_mode():
        dist = vae.encode(pixels.to(param.device, param.dtype)).latent_dist
        # A list of generators: diffusers draws each sample's noise from its own generator (on the CPU).
        latents = normalize_latents(dist.sample(generator=list(generators)), vae)
        _, _, f, h, w = latents.shape
        tokens = pack_latents(latents)
    return [
        {"latents": tokens[i].to("cpu", torch.bfloat16).clone(), "num_frames": f, "height": h, "width": w}
        for i in range(tokens.shape[0])
    ]


def decode_latents(vae, latents: torch.Tensor, num_frames: int, height: int, width: int) -> np.ndarray:
    """Packed latents [F'*H'*W', C] -> uint8 [F,H,W,3]: denormalise, VAE-decode at timestep 0, map [-1,1] to 0..255."""
    import torch

    from ltx_train_lib.models.ltxv.geometry import denormalize_latents, unpack_latents

    param = next(vae.parameters())
    with torch.inference_mode():
        z = unpack_latents(latents[None].to(param.device, param.dtype), num_frames, height, width)
        z = denormalize_latents(z, vae)
        temb = None
        if getattr(vae.config, "timestep_conditioning", False):  # 0.9.1+ decoders take the denoising timestep
            temb = torch.zeros(1, device=param.device, dtype=param.dtype)
        video = vae.decode(z, temb, return_dict=False)[0][0]  # [3, F, H, W]
        video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return video.permute(1, 2, 3, 0).cpu().numpy()


def decode_latents_file(vae, latents_path: Path, target: Path) -> Path:
    """A latents ``.pt`` (the reference's schema) decoded to ``target``: an mp4 at its stored fps, or a PNG for a
    1-frame latent. Written atomically."""
    import torch

    from ltx_train_lib.media import write_video

    lat = torch.load(latents_path, map_location="cpu", weights_only=True)
    video = decode_latents(vae, lat["latents"], lat["num_frames"], lat["height"], lat["width"])
    if len(video) == 1:
        from PIL import Image

        with atomic_path(target) as tmp:
            Image.fromarray(video[0]).save(tmp, format="PNG")
    else:
        # fps <= 0 came from images in old reference caches (its issue #43); 24 is the reference's default.
        fps = float(lat.get("fps") or 0)
        write_video(target, video, fps if fps > 0 else 24.0)
    return target


# ------------------------------------------------------------------------------------------------------ cache paths


def cache_name(key: str) -> Path:
    """``clips/a.mp4`` -> ``clips/a.pt``: the reference's naming (suffix replaced), so its trainer finds the files."""
    return Path(key).with_suffix(".pt")


def sample_key(media: Path, base_dir: Path) -> str:
    """The media path relative to the caption file's folder ('/' separators).

    Media outside that folder gets ``_external/<hash of its folder>/<name>``: a relative path with '..' would point
    outside the cache.
    """
    try:
        return media.relative_to(base_dir).as_posix()
    except ValueError:
        digest = hashlib.sha256(str(media.parent).encode()).hexdigest()[:10]
        return f"_external/{digest}/{media.name}"


def sample_seed(seed: int, key: str) -> int:
    """A per-sample seed that depends only on the run seed and the media path: stable across runs and batches."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") & (2**63 - 1)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def media_signature(path: Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Size, mtime and sha256 of a media file. Size and mtime unchanged: the stored hash is trusted (fast path);
    otherwise the bytes are hashed, so a touched but identical file keeps its cache."""
    st = path.stat()
    if previous and previous.get("size") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns:
        if previous.get("sha256"):
            return dict(previous)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path)}


def _settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------- manifest


class Manifest:
    """``.manifest.json``: per sample, what its cached files were made from. Written atomically."""

    def __init__(self, path: Path, samples: dict[str, dict[str, Any]] | None = None) -> None:
        self.path = path
        self.samples: dict[str, dict[str, Any]] = samples or {}
        self.settings: dict[str, Any] = {}
        self._saved_at = 0.0

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("samples"), dict):
                raise ValueError(f"version {data.get('version')!r}")
        except (OSError, ValueError, AttributeError) as exc:
            # Unreadable or from another version: start afresh (everything is recomputed, nothing is trusted).
            logger.warning("%s: ignoring the cache manifest (%s); every sample will be recomputed", path, exc)
            return cls(path)
        return cls(path, data["samples"])

    def save(self) -> None:
        data = {
            "version": MANIFEST_VERSION,
            "tool": "ltx_train_lib",
            "settings": self.settings,
            "samples": self.samples,
        }
        write_text_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        self._saved_at = time.monotonic()

    def save_now_and_then(self) -> None:
        """Save at most every few seconds: a crash then costs little recomputation and saving stays cheap."""
        if time.monotonic() - self._saved_at >= MANIFEST_SAVE_INTERVAL_S:
            self.save()


@contextlib.contextmanager
def _output_lock(output_dir: Path) -> Iterator[None]:
    """One run per cache folder: two runs would delete each other's files as stale."""
    lock = output_dir / LOCK_NAME
    me = f"{socket.gethostname()}:{os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = lock.read_text(errors="replace").strip() if lock.is_file() else ""
            host, _, pid = owner.partition(":")
            if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
                lock.unlink(missing_ok=True)  # left by a run that was killed
                continue
            raise DatasetError(
                f"{output_dir}: another preprocessing run ({owner or 'unknown'}) is writing this cache. Wait for it "
                f"to finish; if no run is active, delete {lock}."
            ) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------------------- samples


@dataclass
class _Sample:
    key: str  # media path relative to the caption file's folder: the one pairing key
    media: Path
    caption: str
    prompt: str
    entry: dict[str, Any]  # the manifest entry being built for this run
    info: dict[str, Any]
    bucket: Bucket
    seed: int
    need_condition: bool = False
    need_latent: bool = False
    need_decode: bool = False
    # IC-LoRA: the reference video and what probing it found; None without a reference column.
    reference: Path | None = None
    reference_info: dict[str, Any] | None = None
    # Set while the target's frames load, so its reference gets the same frames and crop window.
    start: int = 0
    crop_rng: Any = None

    @property
    def name(self) -> Path:
        return cache_name(self.key)


def _info_dict(info: MediaInfo) -> dict[str, Any]:
    return {
        "kind": info.kind,
        "num_frames": int(info.num_frames),
        "fps": float(info.fps),
        "width": int(info.width),
        "height": int(info.height),
        "vfr": bool(info.variable_frame_rate),
    }


def _reason(exc: Exception, media: Path) -> str:
    """The message of a media error without its leading file name (the skip list names the file already)."""
    text = str(exc)
    for prefix in (f"{media}: ", f"{media}:"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _too_short_reason(info: dict[str, Any], buckets: list[Bucket]) -> str:
    if info["kind"] == "image":
        example = f"{buckets[0].width}x{buckets[0].height}x1"
        return (
            "an image needs a bucket with 1 frame and none was given; add one, e.g. "
            f'--resolution-buckets "{";".join(map(str, buckets))};{example}", or remove the image'
        )
    shortest = min(buckets, key=lambda b: b.frames)
    fits = max(1, (info["num_frames"] - 1) // 8 * 8 + 1)  # the longest 8k+1 count the clip can fill
    bucket = f"{shortest.width}x{shortest.height}x{fits}"
    add = f"a 1-frame bucket such as {bucket} (its first frame then trains as an image)" if fits == 1 else bucket
    return (
        f"the clip has {info['num_frames']} frames, fewer than every bucket (the shortest needs {shortest.frames}); "
        f"remove it, use a longer clip, or add {add}"
    )


def _model_ids(model_source: str, load_in_8bit: bool) -> tuple[str, str]:
    """Identities of the VAE and of the text encoder a model source uses, for the manifest's settings keys.

    Named versions share components (every 0.9.5+ version has the same VAE; T5 always comes from the reference's
    repo), so switching between them keeps whatever cache is still valid.
    """
    from ltx_train_lib.models.ltxv.versions import HF_MAIN_REPO, VAE_REPO_095
    from ltx_train_lib.models.registry import resolve_source

    try:
        source = resolve_source(model_source)
    except ValueError as exc:  # check_model_source raises ValueError for unknown version names
        raise ConfigError(f"model source: {exc}") from exc
    if source.kind == "tiny":
        from ltx_train_lib.models.ltxv.tiny import TINY_VERSION

        vae_id = text_id = f"tiny:{TINY_VERSION}"
    elif source.kind == "version":
        assert source.version is not None
        old = source.version.name in ("LTXV_2B_0.9.0", "LTXV_2B_0.9.1")
        vae_id = f"hub:{source.version.hf_repo if old else VAE_REPO_095}"
        text_id = f"hub:{HF_MAIN_REPO}"
    elif source.kind == "single_file":
        vae_id, text_id = f"file:{source.location}", f"hub:{HF_MAIN_REPO}"
    else:
        vae_id = text_id = f"{source.kind}:{source.location}"
    return vae_id, text_id + (":8bit" if load_in_8bit else "")


# ------------------------------------------------------------------------------------------------------ main entry


def resolve_dataset_file(dataset_file: str | Path) -> Path:
    """A caption file, or a folder holding captions.json (or dataset.json)."""
    path = Path(dataset_file).expanduser()
    if path.is_dir():
        for name in FOLDER_CAPTION_FILES:
            if (path / name).is_file():
                return path / name
        raise DatasetError(
            f"{path}: the folder has no {' or '.join(FOLDER_CAPTION_FILES)}. Pass the caption file itself "
            "(.json, .jsonl, .csv or .txt), or caption the media first (caption_videos.py)."
        )
    if not path.exists():
        raise DatasetError(f"{path}: dataset file not found. Check the path (a caption file or a dataset folder).")
    return path


def _pick_device(device: str | None):
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device '{device}': {exc}; use e.g. cuda, cuda:1 or cpu") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}': no CUDA GPU is visible to PyTorch; use --device cpu (slow) or fix CUDA")
    return dev


def preprocess_dataset(
    dataset_file: str | Path,
    resolution_buckets: str | Sequence[str] | Sequence[Bucket],
    *,
    output_dir: str | Path | None = None,
    model_source: str = "LTXV_13B_097_DEV",
    id_token: str | None = None,
    remove_llm_prefixes: bool = False,
    decode_videos: bool = False,
    vae_tiling: bool = False,
    reshape_mode: str = "center",
    frame_selection: str = "first",
    caption_column: str = "caption",
    media_column: str = "media_path",
    reference_column: str | None = None,
    batch_size: int = 1,
    device: str | None = None,
    load_text_encoder_in_8bit: bool = False,
    seed: int = 42,
    progress: ProgressFn | None = None,
    text_encoder_path: str | None = None,
    tokenizer_path: str | None = None,
    vae_path: str | None = None,
) -> PreprocessResult:
    """Compute (or reuse) the text embeddings and VAE latents of every captioned media file.

    Only samples whose inputs changed are recomputed: the condition when the prompt (caption, trigger word, prefix
    removal) or the text encoder changed; the latents when the media bytes, the assigned bucket, the VAE or the
    crop/frame settings changed. Bad inputs are skipped and listed in ``result.skipped``; only a problem with the
    whole run (no caption file, bad buckets, a model that cannot load) raises an ``LtxTrainError``.

    ``reference_column`` (IC-LoRA): each entry's reference video, from that column, is encoded at its target's
    bucket, frames and crop into ``reference_latents/``; an entry without a usable reference is skipped. The
    reference is re-encoded (with its target) when its bytes change.
    """
    from ltx_train_lib.captions_io import read_captions_checked

    buckets = _as_buckets(resolution_buckets)
    if reshape_mode not in RESHAPE_MODES:
        raise ConfigError(f"reshape mode '{reshape_mode}': use one of {', '.join(RESHAPE_MODES)}")
    if frame_selection not in FRAME_SELECTIONS:
        raise ConfigError(f"frame selection '{frame_selection}': use one of {', '.join(FRAME_SELECTIONS)}")
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size}: must be at least 1")
    vae_id, text_id = _model_ids(model_source, load_text_encoder_in_8bit)
    # Component files from ComfyUI's model folders override the source's own (as model.*_path in the config).
    overrides = {"text_encoder_path": text_encoder_path, "tokenizer_path": tokenizer_path, "vae_path": vae_path}
    overrides = {k: str(Path(v).expanduser().resolve()) for k, v in overrides.items() if v}
    if "vae_path" in overrides:
        vae_id = f"path:{overrides['vae_path']}"
    if "text_encoder_path" in overrides:
        text_id = f"path:{overrides['text_encoder_path']}" + (":8bit" if load_text_encoder_in_8bit else "")
    captions_path = resolve_dataset_file(dataset_file)
    base_dir = Path(os.path.abspath(captions_path)).parent
    out = Path(output_dir).expanduser() if output_dir else base_dir / PRECOMPUTED_DIR
    read = read_captions_checked(captions_path, caption_column=caption_column, media_column=media_column)
    if reference_column and read.entries and not any(reference_column in e.extra for e in read.entries):
        found = sorted({k for e in read.entries for k in e.extra})
        raise DatasetError(
            f"{captions_path}: no reference column '{reference_column}' (other columns found: "
            f"{', '.join(repr(c) for c in found) or 'none'}). Add the reference videos with compute_condition.py, "
            "or name the column that holds them with --reference-column."
        )
    dev = _pick_device(device)

    out.mkdir(parents=True, exist_ok=True)
    result = PreprocessResult(output_dir=out)
    with _output_lock(out):
        run = _Run(
            out=out,
            base_dir=base_dir,
            buckets=buckets,
            model_source=model_source,
            vae_id=vae_id,
            text_id=text_id,
            id_token=id_token,
            remove_llm_prefixes=remove_llm_prefixes,
            decode_videos=decode_videos,
            vae_tiling=vae_tiling,
            reshape_mode=reshape_mode,
            frame_selection=frame_selection,
            reference_column=reference_column or None,
            batch_size=batch_size,
            device=dev,
            load_in_8bit=load_text_encoder_in_8bit,
            overrides=overrides,
            seed=seed,
            progress=progress,
            result=result,
        )
        run.execute(read)
    # Each skip was logged as it happened; callers print result.summary() (the CLI does).
    logger.debug("%s", result.summary())
    return result


def _as_buckets(spec: str | Sequence[str] | Sequence[Bucket]) -> list[Bucket]:
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(b, Bucket) for b in spec):
        return list(spec)  # type: ignore[arg-type]
    return parse_buckets(spec)  # type: ignore[arg-type]


@dataclass
class _Run:
    """One preprocessing run: plan from the manifest, text phase, video phase, then clean-up."""

    out: Path
    base_dir: Path
    buckets: list[Bucket]
    model_source: str
    vae_id: str
    text_id: str
    id_token: str | None
    remove_llm_prefixes: bool
    decode_videos: bool
    vae_tiling: bool
    reshape_mode: str
    frame_selection: str
    reference_column: str | None
    batch_size: int
    device: Any
    load_in_8bit: bool
    overrides: dict[str, str]
    seed: int
    progress: ProgressFn | None
    result: PreprocessResult
    done: int = 0
    total: int = 0
    models_loaded: bool = False

    # ------------------------------------------------------------------ helpers

    def _path(self, folder: str, sample_key_: str, suffix: str = ".pt") -> Path:
        return self.out / folder / cache_name(sample_key_).with_suffix(suffix)

    def _decoded_path(self, s: _Sample, folder: str = DECODED_DIR) -> Path:
        return self._path(folder, s.key, ".png" if s.bucket.frames == 1 else ".mp4")

    def _tick(self, message: str, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total, message)

    def _skip(self, name: str, reason: str) -> None:
        self.result.skipped.append((name, reason))
        logger.warning("skipped %s: %s", name, reason)

    def _condition_key(self, prompt: str) -> str:
        return _settings_key({"prompt": prompt, "text_encoder": self.text_id, "max_tokens": TEXT_MAX_TOKENS})

    def _latent_key(self, bucket: Bucket) -> str:
        return _settings_key(
            {
                "bucket": str(bucket),
                "vae": self.vae_id,
                "reshape_mode": self.reshape_mode,
                "frame_selection": self.frame_selection,
                "seed": self.seed,
                "vae_tiling": self.vae_tiling,
            }
        )

    def _drop_latent(self, key: str) -> None:
        # Latents go first: a latents file must never outlive its condition or its reference latents.
        self._path(LATENTS_DIR, key).unlink(missing_ok=True)
        self._path(REFERENCE_LATENTS_DIR, key).unlink(missing_ok=True)
        for folder in (DECODED_DIR, DECODED_REFERENCE_DIR):
            for suffix in (".mp4", ".png"):
                self._path(folder, key, suffix).unlink(missing_ok=True)

    # ------------------------------------------------------------------ phases

    def execute(self, read) -> None:
        manifest = Manifest.load(self.out / MANIFEST_NAME)
        manifest.settings = {
            "buckets": [str(b) for b in self.buckets],
            "model_source": self.model_source,
            "vae": self.vae_id,
            "text_encoder": self.text_id,
            "id_token": self.id_token,
            "remove_llm_prefixes": self.remove_llm_prefixes,
            "reshape_mode": self.reshape_mode,
            "frame_selection": self.frame_selection,
            "seed": self.seed,
            "vae_tiling": self.vae_tiling,
            "reference_column": self.reference_column,
        }
        self._sweep_temp_files()
        samples = self._plan(read, manifest)
        completed = False
        try:
            self._text_phase(samples, manifest)
            self._video_phase(samples, manifest)
            completed = True
        finally:
            if completed:
                self._finish(samples, manifest)
            else:
                # Interrupted: keep every file that is still valid (a re-run reuses it) and record it.
                manifest.save()
            if self.models_loaded:
                _release_memory(collect=True)

    def _plan(self, read, manifest: Manifest) -> list[_Sample]:
        """Decide per caption entry: skip (with a reason), reuse, or recompute the condition and/or the latents."""
        from ltx_train_lib.media import probe_media

        problems: dict[tuple[str, Path], list[str]] = {}
        for p in read.problems:
            if p.media_path is None:  # an entry without a usable media path: name the caption file
                self._skip(f"{read.path}", p.message)
            else:
                problems.setdefault((p.kind, p.media_path), []).append(p.message)

        samples: list[_Sample] = []
        by_name: dict[Path, str] = {}
        seen: set[Path] = set()
        for entry in read.entries:
            media: Path = entry.media_path
            key = sample_key(media, self.base_dir)
            if media in seen:
                msgs = problems.get(("duplicate_media", media)) or [f"repeats an earlier entry for {key}"]
                self._skip(key, msgs.pop(0) if len(msgs) > 1 else msgs[0])
                continue
            seen.add(media)
            if media.is_dir():
                self._skip(key, f"{media} is a folder, not a video or image; point the entry at a media file")
                continue
            if ("missing_media", media) in problems or not media.exists():
                msgs = problems.get(("missing_media", media)) or [f"media file {media} does not exist"]
                self._skip(key, msgs[0])
                continue
            name = cache_name(key)
            if name in by_name:
                self._skip(
                    key,
                    f"its cache name '{name}' is already used by '{by_name[name]}' (the reference names caches by "
                    "the path without its suffix); rename one of the two files",
                )
                continue
            by_name[name] = key
            if not entry.caption.strip():
                msgs = problems.get(("empty_caption", media)) or ["empty caption; write a caption or remove the entry"]
                self._skip(key, msgs[0])
                continue
            prompt = build_prompt(entry.caption, self.id_token, self.remove_llm_prefixes)
            if not prompt:
                self._skip(key, "the caption is empty once the LLM prefix is removed; write a real caption")
                continue

            previous = manifest.samples.get(key) or {}
            try:
                if not media.is_file():
                    raise DatasetError(f"{media}: not a regular file. Point the entry at a video or image file.")
                sig = media_signature(media, previous.get("media"))
                same_media = sig.get("sha256") == (previous.get("media") or {}).get("sha256")
                info = previous.get("info") if same_media and previous.get("info") else _info_dict(probe_media(media))
            except DatasetError as exc:
                self._skip(key, _reason(exc, media))
                continue
            except OSError as exc:
                self._skip(key, f"cannot be read ({exc.strerror or exc}); fix the path or the file permissions")
                continue
            bucket = nearest_bucket(self.buckets, info["width"], info["height"], info["num_frames"])
            if bucket is None:
                self._skip(key, _too_short_reason(info, self.buckets))
                continue

            new_entry: dict[str, Any] = {"media": sig, "info": info, "caption": entry.caption, "prompt": prompt}
            s = _Sample(key, media, entry.caption, prompt, new_entry, info, bucket, sample_seed(self.seed, key))
            same_reference = True
            if self.reference_column:
                old_ref = previous.get("reference") or {}
                try:
                    s.reference, ref_entry = self._plan_reference(entry, old_ref, info, bucket)
                except DatasetError as exc:
                    self._skip(key, str(exc))
                    continue
                s.reference_info = ref_entry["info"]
                new_entry["reference"] = ref_entry
                # Same reference bytes and its latents still on disk (the path may change: the bytes are what count).
                same_reference = (
                    ref_entry["media"].get("sha256") == (old_ref.get("media") or {}).get("sha256")
                    and "latent" in old_ref
                    and self._path(REFERENCE_LATENTS_DIR, key).is_file()
                )
            cond = previous.get("condition") or {}
            if cond.get("key") == self._condition_key(prompt) and self._path(CONDITIONS_DIR, key).is_file():
                new_entry["condition"] = cond
            else:
                s.need_condition = True
            lat = previous.get("latent") or {}
            if (
                same_media
                and same_reference
                and lat.get("key") == self._latent_key(bucket)
                and self._path(LATENTS_DIR, key).is_file()
            ):
                new_entry["latent"] = lat
                if s.reference is not None:
                    new_entry["reference"]["latent"] = previous["reference"]["latent"]
            else:
                # A target and its reference are encoded together (the reference takes the target's frames and
                # crop), so a change to either recomputes both.
                s.need_latent = True
                # The old latents describe other pixels or settings: remove them now, so no crash can leave them
                # looking current next to a new condition.
                self._drop_latent(key)
            s.need_decode = self.decode_videos and (
                s.need_latent
                or not self._decoded_path(s).is_file()
                or (s.reference is not None and not self._decoded_path(s, DECODED_REFERENCE_DIR).is_file())
            )
            manifest.samples[key] = new_entry
            samples.append(s)

        # Entries dropped from the dataset or skipped above lose their latents now (the condition goes at the end).
        keep = {s.key for s in samples}
        for key in list(manifest.samples):
            if key not in keep:
                self._drop_latent(key)
                del manifest.samples[key]
                if not any(key == k for k, _ in self.result.skipped):
                    self.result.removed.append(key)
        manifest.save()

        self.total = sum(s.need_condition for s in samples) + sum(s.need_latent or s.need_decode for s in samples)
        self.total += sum(not (s.need_condition or s.need_latent or s.need_decode) for s in samples)
        self._tick("checked the cache", sum(not (s.need_condition or s.need_latent or s.need_decode) for s in samples))
        return samples

    def _plan_reference(
        self, entry, previous: dict[str, Any], info: dict[str, Any], bucket: Bucket
    ) -> tuple[Path, dict[str, Any]]:
        """The entry's reference video and its manifest record. Raises DatasetError (the skip reason) when the
        reference is absent, unreadable or shorter than the frames its target is trained on."""
        from ltx_train_lib.captions_io import resolve_media_path
        from ltx_train_lib.media import probe_media

        assert self.reference_column is not None
        stored = entry.extra.get(self.reference_column)
        if not isinstance(stored, str) or not stored.strip():
            raise DatasetError(
                f"no reference video in column '{self.reference_column}'; add one (compute_condition.py writes "
                "them) or remove the entry"
            )
        ref = resolve_media_path(stored, self.base_dir)
        where = f"reference video {ref}"
        if not ref.is_file():
            raise DatasetError(
                f"{where} does not exist; create it (e.g. compute_condition.py) or fix the "
                f"'{self.reference_column}' value"
            )
        try:
            sig = media_signature(ref, previous.get("media"))
            same = sig.get("sha256") == (previous.get("media") or {}).get("sha256")
            ref_info = previous["info"] if same and previous.get("info") else _info_dict(probe_media(ref))
        except DatasetError as exc:
            raise DatasetError(f"{where}: {_reason(exc, ref)}") from None
        except OSError as exc:
            raise DatasetError(
                f"{where} cannot be read ({exc.strerror or exc}); fix the path or the file permissions"
            ) from None
        if ref_info["kind"] == "image" and bucket.frames > 1:
            raise DatasetError(
                f"{where} is an image but its target is trained on {bucket.frames} frames; give a video reference "
                "as long as the target"
            )
        if ref_info["num_frames"] < bucket.frames:
            raise DatasetError(
                f"{where} has {ref_info['num_frames']} frames, fewer than the {bucket.frames} its target is trained "
                "on; give a reference as long as the target"
            )
        if not same and abs(ref_info["width"] * info["height"] - ref_info["height"] * info["width"]) > 0.01 * (
            info["width"] * info["height"]
        ):
            # Both are cropped to the same bucket, but different shapes put different content under the crop.
            logger.warning(
                "%s: %dx%d has another aspect ratio than its target (%dx%d); the two crops will not line up",
                where,
                ref_info["width"],
                ref_info["height"],
                info["width"],
                info["height"],
            )
        return ref, {"path": sample_key(ref, self.base_dir), "media": sig, "info": ref_info}

    def _text_phase(self, samples: list[_Sample], manifest: Manifest) -> None:
        todo = [s for s in samples if s.need_condition]
        if not todo:
            return
        self.models_loaded = True
        tokenizer, text_encoder = _load_text_encoder(self.model_source, self.device, self.load_in_8bit, self.overrides)
        try:
            logger.info("encoding %d caption(s) with the text encoder", len(todo))
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                for s, cond in zip(
                    chunk, encode_prompts(tokenizer, text_encoder, [s.prompt for s in chunk]), strict=True
                ):
                    _save_tensor(cond, self._path(CONDITIONS_DIR, s.key))
                    s.entry["condition"] = {"key": self._condition_key(s.prompt)}
                    self.result.conditions_computed.append(s.key)
                    self._tick(f"caption {s.key}")
                manifest.save_now_and_then()
        finally:
            # The text encoder goes before the VAE loads (T5-XXL is the largest model of the run).
            del text_encoder, tokenizer
            _release_memory(collect=False)
        manifest.save()

    def _video_phase(self, samples: list[_Sample], manifest: Manifest) -> None:
        todo = [s for s in samples if s.need_latent or s.need_decode]
        if not todo:
            return
        self.models_loaded = True
        vae = _load_vae(self.model_source, self.device, self.vae_tiling, self.overrides)
        try:
            # Batches hold one bucket each (one tensor shape per VAE call).
            groups: dict[Bucket, list[_Sample]] = {}
            for s in todo:
                groups.setdefault(s.bucket, []).append(s)
            for bucket in sorted(groups):
                group = groups[bucket]
                for start in range(0, len(group), self.batch_size):
                    self._encode_batch(vae, group[start : start + self.batch_size])
                    manifest.save_now_and_then()
        finally:
            del vae
            _release_memory(collect=False)

    def _encode_batch(self, vae, batch: list[_Sample]) -> None:
        import torch

        loaded: dict[tuple[int, ...], list[tuple[_Sample, torch.Tensor, float]]] = {}
        references: dict[str, tuple[torch.Tensor, float]] = {}
        for s in batch:
            if not s.need_latent:
                continue
            try:
                frames, fps = self._load_frames(s)
            except DatasetError as exc:
                self._fail(s, _reason(exc, s.media))
                continue
            if s.reference is not None:
                try:
                    ref_frames, ref_fps = self._load_reference_frames(s)
                except DatasetError as exc:
                    self._fail(s, f"reference video {s.reference}: {_reason(exc, s.reference)}")
                    continue
                references[s.key] = (frames_to_pixels(ref_frames), ref_fps)
            pixels = frames_to_pixels(frames)
            loaded.setdefault(tuple(pixels.shape), []).append((s, pixels, fps))
        for items in loaded.values():
            ref_items = [(s, *references[s.key]) for s, _, _ in items if s.key in references]
            if ref_items:
                # Reference and target have one shape, so the reference batch is this group's shape too. Its own
                # seed: its latent sample must not reuse the target's noise.
                ref_gens = [
                    torch.Generator().manual_seed(sample_seed(self.seed, f"{s.key}#reference")) for s, _, _ in ref_items
                ]
                ref_encoded = encode_latents(vae, torch.stack([p for _, p, _ in ref_items]), ref_gens)
                # Reference latents first: a latents file must never exist without them (see the module docstring).
                for (s, _, ref_fps), lat in zip(ref_items, ref_encoded, strict=True):
                    lat["fps"] = float(ref_fps)
                    _save_tensor(lat, self._path(REFERENCE_LATENTS_DIR, s.key))
                    s.entry["reference"]["latent"] = {"shape": [lat["num_frames"], lat["height"], lat["width"]]}
                    self.result.references_computed.append(s.key)
            gens = [torch.Generator().manual_seed(s.seed) for s, _, _ in items]
            encoded = encode_latents(vae, torch.stack([p for _, p, _ in items]), gens)
            for (s, _, fps), lat in zip(items, encoded, strict=True):
                lat["fps"] = float(fps)
                _save_tensor(lat, self._path(LATENTS_DIR, s.key))
                s.entry["latent"] = {
                    "key": self._latent_key(s.bucket),
                    "bucket": str(s.bucket),
                    "shape": [lat["num_frames"], lat["height"], lat["width"]],
                    "fps": float(fps),
                }
                self.result.latents_computed.append(s.key)
        for s in batch:
            if "latent" not in s.entry:
                continue  # failed above
            if s.need_decode:
                self._decode(vae, s)
            self._tick(f"video {s.key}")

    def _load_frames(self, s: _Sample) -> tuple[np.ndarray, float]:
        """Pick the bucket's frames, resize and crop. Re-buckets when the file has fewer frames than it claimed."""
        import numpy as np

        from ltx_train_lib.media import load_image, read_video_frames, resize_and_crop

        rng = np.random.default_rng(s.seed)
        if s.info["kind"] == "image":
            frames, fps = load_image(s.media)[None], IMAGE_FPS
        else:
            n, f = s.info["num_frames"], s.bucket.frames
            if self.frame_selection == "center":
                start = (n - f) // 2
            elif self.frame_selection == "random":
                start = int(rng.integers(0, n - f + 1))
            else:
                start = 0
            # A variable-frame-rate file is resampled to its average rate, so motion speed stays even.
            resample = s.info["fps"] if s.info.get("vfr") else None
            frames, fps = read_video_frames(s.media, start=start, max_frames=f, fps=resample)
            if len(frames) < f and start > 0:
                start = 0
                frames, fps = read_video_frames(s.media, start=start, max_frames=f, fps=resample)
            if len(frames) < f:
                # The container overstated its frame count: fall back to the bucket the real count fits.
                info = dict(s.info, num_frames=len(frames))
                bucket = nearest_bucket(self.buckets, info["width"], info["height"], len(frames))
                if bucket is None:
                    raise DatasetError(_too_short_reason(info, self.buckets))
                s.bucket, s.info = bucket, info
                s.entry["info"] = info
                frames = frames[: bucket.frames]
            s.start = start
        # The reference (IC-LoRA) replays this generator state, so a random crop picks the same window for both.
        s.crop_rng = copy.deepcopy(rng)
        frames = resize_and_crop(frames, s.bucket.width, s.bucket.height, mode=self.reshape_mode, rng=rng)  # type: ignore[arg-type]
        return frames, fps

    def _load_reference_frames(self, s: _Sample) -> tuple[np.ndarray, float]:
        """The reference's frames at its target's frame indices and bucket, cropped like the target."""
        from ltx_train_lib.media import load_image, read_video_frames, resize_and_crop

        assert s.reference is not None and s.reference_info is not None
        f = s.bucket.frames
        if s.reference_info["kind"] == "image":
            if f != 1:
                raise DatasetError(f"is an image but its target is trained on {f} frames; give a video reference")
            frames, fps = load_image(s.reference)[None], IMAGE_FPS
        else:
            resample = s.reference_info["fps"] if s.reference_info.get("vfr") else None
            frames, fps = read_video_frames(s.reference, start=s.start, max_frames=f, fps=resample)
            if len(frames) < f:
                raise DatasetError(
                    f"has {s.start + len(frames)} frames but its target is trained on frames {s.start}-"
                    f"{s.start + f - 1}; give a reference as long as the target"
                )
        frames = resize_and_crop(
            frames, s.bucket.width, s.bucket.height, mode=self.reshape_mode, rng=copy.deepcopy(s.crop_rng)
        )  # type: ignore[arg-type]
        return frames, fps

    def _decode(self, vae, s: _Sample) -> None:
        decode_latents_file(vae, self._path(LATENTS_DIR, s.key), self._decoded_path(s))
        if s.reference is not None:
            decode_latents_file(
                vae, self._path(REFERENCE_LATENTS_DIR, s.key), self._decoded_path(s, DECODED_REFERENCE_DIR)
            )
        self.result.decoded.append(s.key)

    def _fail(self, s: _Sample, reason: str) -> None:
        """A sample that turned out bad while reading its frames: skip it and drop its cache."""
        self._skip(s.key, reason)
        s.entry.pop("latent", None)
        (s.entry.get("reference") or {}).pop("latent", None)
        self._drop_latent(s.key)
        self._tick(f"skipped {s.key}")

    def _finish(self, samples: list[_Sample], manifest: Manifest) -> None:
        """Record the completed samples and delete every cached file that does not belong to one."""
        complete = [
            s
            for s in samples
            if "latent" in s.entry
            and "condition" in s.entry
            and (s.reference is None or "latent" in s.entry["reference"])
        ]
        manifest.samples = {s.key: s.entry for s in complete}
        manifest.save()
        names = {cache_name(s.key) for s in complete}
        decoded = {self._decoded_path(s).relative_to(self.out / DECODED_DIR) for s in complete}
        # Without a reference column no reference latents are current: they all go (see the module docstring).
        ref_names = names if self.reference_column else set()
        ref_decoded = decoded if self.reference_column else set()
        # Latents before their reference latents and conditions: see the module docstring.
        self._sweep(LATENTS_DIR, lambda rel: rel in names, (".pt",))
        self._sweep(REFERENCE_LATENTS_DIR, lambda rel: rel in ref_names, (".pt",))
        self._sweep(CONDITIONS_DIR, lambda rel: rel in names, (".pt",))
        self._sweep(DECODED_DIR, lambda rel: rel in decoded, (".mp4", ".png"))
        self._sweep(DECODED_REFERENCE_DIR, lambda rel: rel in ref_decoded, (".mp4", ".png"))
        for s in complete:
            self.result.buckets[s.key] = s.entry["latent"]["bucket"]
            if s.need_latent or s.need_condition:
                self.result.processed.append(s.key)
            else:
                self.result.reused.append(s.key)

    def _sweep(self, folder: str, keep: Callable[[Path], bool], suffixes: tuple[str, ...]) -> None:
        root = self.out / folder
        if not root.is_dir():
            return
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in suffixes and not keep(path.relative_to(root)):
                path.unlink()
        _remove_empty_dirs(root)

    def _sweep_temp_files(self) -> None:
        """Temp files of a run that was killed mid-write (atomic_path names them '.<name>.<random>.tmp')."""
        for folder in (LATENTS_DIR, REFERENCE_LATENTS_DIR, CONDITIONS_DIR, DECODED_DIR, DECODED_REFERENCE_DIR, "."):
            root = self.out / folder
            if root.is_dir():
                pattern = ".*.tmp" if folder == "." else "**/.*.tmp"
                for tmp in root.glob(pattern):
                    if tmp.is_file():
                        tmp.unlink(missing_ok=True)


def _remove_empty_dirs(root: Path) -> None:
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()


def _save_tensor(obj: dict[str, Any], target: Path) -> None:
    import torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)


# ---------------------------------------------------------------------------------------------------------- models


def _load_text_encoder(model_source: str, device, load_in_8bit: bool, overrides: dict[str, str] | None = None):
    import torch

    from ltx_train_lib.models.loader import load_components

    overrides = overrides or {}
    if load_in_8bit:
        return _load_text_encoder_8bit(model_source, device, overrides)
    # bf16 on GPU as the reference; on CPU the tiny model runs in fp32, real T5-XXL in bf16 (half the memory).
    from ltx_train_lib.models.registry import resolve_source

    tiny = resolve_source(model_source).kind == "tiny"
    dtype = torch.bfloat16 if device.type == "cuda" or not tiny else torch.float32
    comps = load_components(
        model_source, components=("text_encoder", "tokenizer"), text_encoder_dtype=dtype,
        text_encoder_path=overrides.get("text_encoder_path"), tokenizer_path=overrides.get("tokenizer_path"),
    )
    text_encoder = comps.text_encoder.to(device).eval()
    return comps.tokenizer, text_encoder


def _load_text_encoder_8bit(model_source: str, device, overrides: dict[str, str] | None = None):
    """T5 quantised to int8 with bitsandbytes (CUDA only), from the same place load_components would read it."""
    if device.type != "cuda":
        raise ConfigError("--load-text-encoder-in-8bit needs a CUDA GPU (bitsandbytes); drop the flag on CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--load-text-encoder-in-8bit needs bitsandbytes: pip install bitsandbytes") from exc
    import torch
    from transformers import BitsAndBytesConfig, T5EncoderModel

    from ltx_train_lib.errors import ModelLoadError
    from ltx_train_lib.models.loader import load_components
    from ltx_train_lib.models.ltxv.versions import HF_MAIN_REPO
    from ltx_train_lib.models.registry import resolve_source

    source = resolve_source(model_source)
    if source.kind == "tiny":
        from ltx_train_lib.models.ltxv.tiny import tiny_model_dir

        where = str(tiny_model_dir())
    elif source.kind in ("folder", "hub"):
        where = source.location
    else:
        where = HF_MAIN_REPO
    overrides = overrides or {}
    if overrides.get("text_encoder_path"):
        where = overrides["text_encoder_path"]  # a folder; 8-bit loading of a single T5 file is not supported
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
    tokenizer = load_components(model_source, components=("tokenizer",), tokenizer_path=overrides.get("tokenizer_path")).tokenizer
    return tokenizer, text_encoder.eval()


def _load_vae(model_source: str, device, tiling: bool, overrides: dict[str, str] | None = None):
    import torch

    from ltx_train_lib.models.loader import load_components

    # bf16 on GPU as the reference; fp32 on CPU, where bf16 3-D convolutions are slow.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    vae_path = (overrides or {}).get("vae_path")
    vae = load_components(model_source, components=("vae",), vae_dtype=dtype, vae_path=vae_path).vae.to(device).eval()
    if tiling:
        vae.enable_tiling()
    return vae


def _release_memory(collect: bool) -> None:
    """Models are freed by reference counting once deleted (they hold no reference cycles); a full gc pass costs
    about a second in a process that imported torch and transformers, so it runs once, at the end of a run."""
    if collect:
        gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


__all__ = [
    "COMMON_LLM_START_PHRASES",
    "CONDITIONS_DIR",
    "DECODED_DIR",
    "DECODED_REFERENCE_DIR",
    "LATENTS_DIR",
    "MANIFEST_NAME",
    "PRECOMPUTED_DIR",
    "PreprocessResult",
    "REFERENCE_LATENTS_DIR",
    "build_prompt",
    "cache_name",
    "clean_llm_prefix",
    "decode_latents",
    "decode_latents_file",
    "encode_latents",
    "encode_prompts",
    "preprocess_dataset",
    "resolve_dataset_file",
]
