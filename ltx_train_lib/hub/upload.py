"""Push a finished training output folder to the Hugging Face Hub: weights, config, model card and sample GIFs.

Everything goes up in one commit (``HfApi.create_commit``): a failed upload leaves the repository as it was. Weights are
uploaded from where they lie; only the card, the config copy and the GIFs are staged in a temporary folder.

The token comes from the ``token`` argument, ``HF_TOKEN``/``HUGGING_FACE_HUB_TOKEN`` or huggingface_hub's login
cache. It is passed to huggingface_hub only; it is never written to a file, a log line or an error message.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any

from ltx_train_lib.hub.card import family_card_text, render_model_card
from ltx_train_lib.hub.errors import HubError, wrap_hub_errors
from ltx_train_lib.hub.facts import CardFacts, collect_card_facts
from ltx_train_lib.hub.folder import CONFIG_FILE
from ltx_train_lib.hub.samples import video_to_gif

logger = logging.getLogger(__name__)


def resolve_token(token: str | None = None) -> str:
    """The token to use: argument, then HF_TOKEN / HUGGING_FACE_HUB_TOKEN, then the login cache."""
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError(
            "Hugging Face Hub: no token found (checked the token argument, HF_TOKEN, HUGGING_FACE_HUB_TOKEN and the "
            "login cache); create a write token at https://huggingface.co/settings/tokens, then set HF_TOKEN or run "
            "`hf auth login`"
        )
    return found


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    problem = None
    if not isinstance(repo_id, str) or not repo_id.strip():
        problem = "it is empty"
    elif repo_id.count("/") > 1:
        problem = "it has more than one '/'"
    else:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as exc:
            problem = str(exc).splitlines()[0]
    if problem:
        raise HubError(
            f"repo id {repo_id!r} is invalid ({problem}); "
            "use 'user-or-org/name' with letters, digits, '-', '_' and '.' "
            "(max 96 characters), e.g. 'alice/ltxv-cakeify-lora'"
        )


def _scrub(text: str, token: str, where: str) -> str:
    """Last line of defence: a token must never be published, even if it slipped into a config value."""
    if token and token in text:
        logger.warning("%s contained the Hub token; it was replaced by '***' in the uploaded copy", where)
        return text.replace(token, "***")
    return text


def _stage_gifs(facts: CardFacts, staging: Path) -> CardFacts:
    """Make each sample's GIF under ``staging``; the facts keep only the samples whose GIF was made."""
    kept = []
    for sample in facts.samples:
        if sample.video is None:
            continue
        try:
            video_to_gif(sample.video, staging / sample.path_in_repo)
        except Exception as exc:  # one bad video must not block publishing the model
            logger.warning("%s: cannot convert to GIF (%s); it is left out of the model card", sample.video, exc)
            continue
        kept.append(sample)
    return dataclasses.replace(facts, samples=tuple(kept))


def _config_text(facts: CardFacts) -> str | None:
    """The config as uploaded: the folder's own file byte for byte when there is one (comments kept), else a dump."""
    path = facts.output_dir / CONFIG_FILE if facts.output_dir is not None else None
    if path is not None and path.is_file():
        return path.read_text(encoding="utf-8", errors="replace")
    if facts.config:
        import yaml

        return yaml.safe_dump(dict(facts.config), sort_keys=False)
    return None


def push_to_hub(
    output_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    config: Any = None,
    trigger_word: str | None = None,
) -> str:
    """Upload a training output folder to ``repo_id`` in one commit; returns the repository URL.

    Uploaded: the LoRA pair (or ``model_weights*.safetensors``), ``training_config.yaml``, a ``README.md`` model card
    and the last validation round's samples as GIFs under ``sample_videos/``. A LoRA whose health scan fails (NaN/Inf,
    or a trained LoRA that changes nothing) is refused with :class:`~ltx_train_lib.lora_health.LoraHealthError`
    before anything is sent; the card states the scan's result.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise HubError(f"{output_dir}: output folder not found; pass the output_dir of a finished training run")
    # Local problems (no weights, bad config, a LoRA holding NaN) are reported before a token is needed or the
    # network is touched.
    facts = collect_card_facts(output_dir, repo_id=repo_id, config=config, trigger_word=trigger_word)
    if facts.is_lora:
        from ltx_train_lib.lora_health import check_files

        reports = check_files([output_dir / name for name in facts.files], action=f"upload {output_dir} to the Hub")
        facts = dataclasses.replace(facts, health=reports[0].summary())
    _check_repo_id(repo_id)
    token = resolve_token(token)
    api = HfApi(endpoint=endpoint, token=token)
    hub_url = api.endpoint

    if "/" not in repo_id:
        with wrap_hub_errors("look up the token's user name", repo_id, hub_url):
            user = api.whoami()["name"]
        facts = dataclasses.replace(facts, repo_id=f"{user}/{repo_id}")
    repo_id = facts.repo_id

    with tempfile.TemporaryDirectory(prefix="ltx_hub_") as tmp:
        staging = Path(tmp)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(output_dir / name)) for name in facts.files
        ]
        config_text = _config_text(facts)
        if config_text is not None:
            staged = staging / CONFIG_FILE
            staged.write_text(_scrub(config_text, token, CONFIG_FILE), encoding="utf-8")
            operations.append(CommitOperationAdd(path_in_repo=CONFIG_FILE, path_or_fileobj=str(staged)))

        facts = _stage_gifs(facts, staging)
        operations += [
            CommitOperationAdd(path_in_repo=s.path_in_repo, path_or_fileobj=str(staging / s.path_in_repo))
            for s in facts.samples
        ]
        readme = staging / "README.md"
        readme.write_text(_scrub(render_model_card(facts), token, "README.md"), encoding="utf-8")
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(readme)))

        with wrap_hub_errors("create the repository", repo_id, hub_url):
            repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        what = "LoRA" if facts.is_lora else "fine-tune"
        with wrap_hub_errors("upload the files", repo_id, hub_url):
            api.create_commit(
                repo_id,
                operations,
                commit_message=f"Upload {family_card_text(facts).family_name} {what} ({len(operations)} files)",
                repo_type="model",
            )
    url = str(repo_url)
    logger.info("uploaded %d files to %s", len(operations), url)
    return url
