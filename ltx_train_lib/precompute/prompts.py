"""The text that is embedded for a caption: optional removal of a captioning LLM's opener, then the trigger word.

Both follow the reference trainer (reference/ltx-video-trainer.md §3.3), so a cache made by either tool embeds the
same prompt for the same caption and settings.
"""

from __future__ import annotations

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


def clean_llm_prefix(text: str) -> str:
    """Strip one leading phrase such as "The video shows" (the reference strips one, then whitespace)."""
    text = text.strip()
    for phrase in COMMON_LLM_START_PHRASES:
        if text.startswith(phrase):
            return text.removeprefix(phrase).strip()
    return text


def build_prompt(caption: str, id_token: str | None = None, remove_llm_prefixes: bool = False) -> str:
    """The text that is embedded: prefix removal first, then the trigger word, as the reference does — once, even
    where the caption already starts with it (no "zxq zxq")."""
    from ltx_train_lib.captions_io import prepend_trigger

    text = clean_llm_prefix(caption) if remove_llm_prefixes else caption.strip()
    return prepend_trigger(text, id_token)

