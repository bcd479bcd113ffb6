"""Text embeddings and VAE latents into ``.precomputed/``, incrementally, without mispairing, one cache per model.

Layout and tensor schema are the reference trainer's (reference/ltx-video-trainer.md §3.2-3.3, §5.4), so a cache
made here loads in the reference trainer and vice versa::

    <dataset dir>/.precomputed/
      latents/<media path>.pt        {"latents": bf16 [F'*H'*W', C], "num_frames": F', "height": H', "width": W', "fps"}
      conditions/<media path>.pt     {"prompt_embeds": bf16 [256, D], "prompt_attention_mask": bool [256]}
      reference_latents/<media path>.pt   IC-LoRA only (reference_column): the reference video of the sample,
                                     encoded at the target's bucket, frames and crop; same schema as latents/
      decoded_videos/<media path>.mp4|.png    (decode_videos=True, to check by eye)
      decoded_reference_videos/<media path>.mp4|.png    (decode_videos=True with reference_column)
      .manifest.json                 what each cached file was made from (media hash, caption, settings, the text
                                     encoding of the conditions)
      cache/<key>/...                every cache made so far, one per model/encoder/text encoding/bucket settings,
                                     each in the layout above; the top level is a copy (hard links) of the current one
      .ltx_train.lock                held while a run writes (an OS lock)

``<media path>`` is the media file's path relative to the caption file's folder with its suffix replaced, as the
reference names them. A run works only in its ``cache/<key>/`` and publishes it at the top level once it has
completed, so a failed run never touches the cache the trainer reads, and switching models and back recomputes
nothing (:mod:`.store`).

The package, by subject:

- :mod:`.config`   :class:`PrecomputeConfig`, the schema of every option (node widgets, CLI flags and the docs
  table are derived from it);
- :mod:`.manifest` sample keys, cache names, media signatures, settings keys, the manifest, the output lock;
- :mod:`.cache`    the files of a cache folder: paths, atomic writes, deletion order, sweeping;
- :mod:`.store`    the keyed caches under ``cache/``, reuse of another cache's files, publishing the current one;
- :mod:`.context`  a run's resolved settings and its report (:class:`PreprocessResult`), the checks before a run;
- :mod:`.plan`     what to compute per caption entry (skip, reuse, recompute), reference pairing (IC-LoRA);
- :mod:`.frames`   which pixels a sample (and its reference) is encoded from;
- :mod:`.run`      :func:`preprocess_dataset`: text phase, video phase, decode, finish and sweep;
- :mod:`.prompts`  the embedded text of a caption (LLM-prefix removal, trigger word);
- :mod:`.model_io` every model-specific step (loading, text encoding as ``text_encoding`` says, VAE encoding,
  decoding); the rest reaches model code only through it.

Importing the package is cheap: torch, transformers and diffusers load inside the functions that use them.
"""

from __future__ import annotations

from . import model_io
from .config import FRAME_SELECTIONS, RESHAPE_MODES, TEXT_ENCODINGS, PrecomputeConfig
from .context import FOLDER_CAPTION_FILES, PreprocessResult, ProgressFn, pick_device, resolve_dataset_file
from .frames import IMAGE_FPS
from .manifest import (
    CONDITIONS_DIR,
    DECODED_DIR,
    DECODED_REFERENCE_DIR,
    LATENTS_DIR,
    LOCK_NAME,
    MANIFEST_NAME,
    MANIFEST_SAVE_INTERVAL_S,
    MANIFEST_VERSION,
    PRECOMPUTED_DIR,
    REFERENCE_LATENTS_DIR,
    Manifest,
    cache_key,
    cache_name,
    cache_text_encoding,
    file_sha256,
    media_signature,
    sample_key,
    sample_seed,
)
from .model_io import (
    _load_text_encoder,
    _load_vae,
    _model_ids,
    _release_memory,
    decode_latents,
    decode_latents_file,
    encode_latents,
    encode_prompts,
    frames_to_pixels,
)
from .prompts import (
    COMMON_BEGINNING_PHRASES,
    COMMON_CONTINUATION_WORDS,
    COMMON_LLM_START_PHRASES,
    build_prompt,
    clean_llm_prefix,
)
from .run import preprocess_dataset, run_precompute
from .store import STORE_DIR, publish

# The former module's private name, still imported by ltx_train_lib.cli.decode_latents.
_pick_device = pick_device

__all__ = [
    "COMMON_BEGINNING_PHRASES",
    "COMMON_CONTINUATION_WORDS",
    "COMMON_LLM_START_PHRASES",
    "CONDITIONS_DIR",
    "DECODED_DIR",
    "DECODED_REFERENCE_DIR",
    "FOLDER_CAPTION_FILES",
    "FRAME_SELECTIONS",
    "IMAGE_FPS",
    "LATENTS_DIR",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "MANIFEST_SAVE_INTERVAL_S",
    "MANIFEST_VERSION",
    "PRECOMPUTED_DIR",
    "REFERENCE_LATENTS_DIR",
    "RESHAPE_MODES",
    "STORE_DIR",
    "TEXT_ENCODINGS",
    "Manifest",
    "PrecomputeConfig",
    "PreprocessResult",
    "ProgressFn",
    "_load_text_encoder",
    "_load_vae",
    "_model_ids",
    "_pick_device",
    "_release_memory",
    "build_prompt",
    "cache_key",
    "cache_name",
    "cache_text_encoding",
    "clean_llm_prefix",
    "decode_latents",
    "decode_latents_file",
    "encode_latents",
    "encode_prompts",
    "file_sha256",
    "frames_to_pixels",
    "media_signature",
    "model_io",
    "pick_device",
    "preprocess_dataset",
    "publish",
    "resolve_dataset_file",
    "run_precompute",
    "sample_key",
    "sample_seed",
]
