"""Push a finished training output folder to the Hugging Face Hub: weights, config, model card and sample GIFs.

Everything goes up in one commit (``HfApi.create_commit``): a failed upload leaves the repository as it was. Weights are
uploaded from where they lie; only the card, the config copy and the GIFs are staged in a temporary folder.

The token comes from the ``token`` argument, ``HF_TOKEN``/``HUGGING_FACE_HUB_TOKEN`` or huggingface_hub's login
cache. It is passed to huggingface_hub only; it is never written to a file, a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import re
import string
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import LtxTrainError

logger = logging.getLogger(__name__)

LORA_FILES = ("lora_weights.safetensors", "lora_weights_comfy.safetensors")
FULL_FILES = ("model_weights.safetensors", "model_weights_comfy.safetensors")
CONFIG_FILE = "training_config.yaml"
SAMPLES_DIR = "validation_samples"
PROMPTS_FILE = "prompts.json"
HUB_SAMPLES_DIR = "sample_videos"
SAMPLE_NAME = re.compile(r"^step_(?P<step>\d+)_p(?P<p>\d+)_v(?P<v>\d+)\.mp4$")
GIF_MAX_FPS = 15.0
GIF_MAX_SIDE = 512  # keeps a 161-frame sample GIF to a few MB; the mp4 stays the reference
GRID_COLUMNS = 4
TAGS = ["ltx-video", "text-to-video", "image-to-video"]
DEFAULT_HUB = "https://huggingface.co"
_TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"


class HubError(LtxTrainError):
    """The Hub upload cannot be done or failed (no token, bad repo id, network or HTTP error)."""


@dataclass(frozen=True)
class Sample:
    path: Path
    step: int
    prompt_index: int
    video_index: int
    prompt: str


# --------------------------------------------------------------------------------------------------------------------
# Reading the output folder
# --------------------------------------------------------------------------------------------------------------------


def find_weight_files(output_dir: Path) -> tuple[str, list[Path]]:
    """('lora' | 'full', files present); LoRA wins when both kinds are there (the usual case is one kind)."""
    for kind, names in (("lora", LORA_FILES), ("full", FULL_FILES)):
        found = [output_dir / n for n in names if (output_dir / n).is_file()]
        if found:
            return kind, found
    present = sorted(p.name for p in output_dir.glob("*.safetensors"))
    raise HubError(
        f"{output_dir}: no final weights to upload (looked for {', '.join(LORA_FILES + FULL_FILES)}; "
        f"found {', '.join(present) if present else 'no .safetensors files'}); let training finish, "
        "or pass the folder that holds lora_weights.safetensors"
    )


def _read_prompts(samples_dir: Path) -> dict[str, str]:
    path = samples_dir / PROMPTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("%s: unreadable (%s); samples get their prompts from the config instead", path, exc)
        return {}
    if not isinstance(data, dict):
        logger.warning("%s: expected a JSON object {file name: prompt}; ignoring it", path)
        return {}
    return {str(k): str(v) for k, v in data.items()}


def last_validation_samples(output_dir: str | Path, config_prompts: list[str] | None = None) -> list[Sample]:
    """The samples of the last validation round (highest step), ordered by prompt then video index."""
    samples_dir = Path(output_dir) / SAMPLES_DIR
    if not samples_dir.is_dir():
        return []
    found = [(m, p) for p in samples_dir.iterdir() if p.is_file() and (m := SAMPLE_NAME.match(p.name))]
    if not found:
        return []
    last = max(int(m["step"]) for m, _ in found)
    prompts = _read_prompts(samples_dir)
    config_prompts = config_prompts or []
    samples = []
    for m, path in found:
        if int(m["step"]) != last:
            continue
        p = int(m["p"])
        prompt = prompts.get(path.name) or (config_prompts[p] if p < len(config_prompts) else "")
        samples.append(Sample(path, last, p, int(m["v"]), prompt))
    return sorted(samples, key=lambda s: (s.prompt_index, s.video_index))


def video_to_gif(
    src: str | Path, dst: str | Path, *, max_fps: float = GIF_MAX_FPS, max_side: int = GIF_MAX_SIDE
) -> Path:
    """mp4 -> looping GIF at min(source fps, max_fps). Frames are picked by time, so the GIF plays at real speed."""
    import av
    from PIL import Image

    src, dst = Path(src), Path(dst)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        src_fps = float(rate) if rate else 24.0
        frames = [frame.to_image() for frame in container.decode(stream)]
    if not frames:
        raise ValueError(f"{src}: no video frames")
    fps = min(src_fps, max_fps)
    n_out = max(1, int(len(frames) * fps / src_fps + 1e-6))
    picked = [frames[min(len(frames) - 1, round(i * src_fps / fps))] for i in range(n_out)]
    w, h = picked[0].size
    scale = min(1.0, max_side / max(w, h))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        picked = [f.resize(size, Image.Resampling.LANCZOS) for f in picked]
    dst.parent.mkdir(parents=True, exist_ok=True)
    picked[0].save(dst, format="GIF", save_all=True, append_images=picked[1:], duration=round(1000 / fps), loop=0)
    return dst


def _weights_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # a damaged header only costs the card some details
        logger.warning("%s: cannot read the safetensors header (%s); the model card will lack its details", path, exc)
        return {}


def _config_dict(output_dir: Path, config: Any) -> dict[str, Any]:
    if config is not None:
        if hasattr(config, "model_dump"):
            return config.model_dump(mode="json")
        if isinstance(config, Mapping):
            return dict(config)
        raise HubError(f"config: expected a TrainerConfig or a dict, got {type(config).__name__}")
    path = output_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        logger.warning("%s: unreadable (%s); the model card will lack training settings", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseModelInfo:
    name: str  # what people read
    hub_id: str | None  # front-matter base_model (must be a Hub repo id)
    link: str | None
    version: str | None
    diffusers_repo: str | None


def _base_model_info(source: str | None) -> BaseModelInfo:
    from ltx_train_lib.models.ltxv.versions import HF_MAIN_REPO, MODEL_VERSIONS

    if not source:
        return BaseModelInfo(
            "LTX-Video (version not recorded)", HF_MAIN_REPO, f"{DEFAULT_HUB}/{HF_MAIN_REPO}", None, HF_MAIN_REPO
        )
    version = MODEL_VERSIONS.get(source)
    if version is not None:
        number = re.search(r"\d+\.\d+(?:\.\d+)?|0\d\d", version.name)
        pretty = number.group(0) if number else None
        if pretty and "." not in pretty:  # "097" -> "0.9.7"
            pretty = ".".join(pretty)
        return BaseModelInfo(
            f"LTX-Video {version.size} {pretty or ''} ({version.name})".replace("  ", " "),
            HF_MAIN_REPO,
            version.single_file_url,
            pretty,
            version.hf_repo,
        )
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source) and not Path(source).exists():
        return BaseModelInfo(source, source, f"{DEFAULT_HUB}/{source}", None, source)
    # A local folder or file: name it, but do not put a path in the public card's front matter.
    return BaseModelInfo(f"{Path(source).name} (local model)", None, None, None, None)


def _get(d: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _as_list(value: Any) -> list[Any] | None:
    """Header values are strings: JSON lists (what export writes), or 'a;b' / 'a, b' text written by hand."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return list(value)
    text = str(value)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return [part.strip() for part in re.split(r"[;,]", text) if part.strip()]
    return parsed if isinstance(parsed, list) else [parsed]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def render_model_card(
    *,
    repo_id: str,
    kind: str,
    files: list[str],
    config: Mapping[str, Any],
    weights_metadata: Mapping[str, str],
    samples: list[tuple[str, str]],
    trigger_word: str | None,
    samples_step: int | None = None,
) -> str:
    """README.md text. ``samples`` are (path in repo, prompt) pairs; ``files`` the uploaded weight file names."""
    import yaml

    meta = weights_metadata
    source = _get(config, "model.model_source") or meta.get("base_model") or meta.get("model_source")
    base = _base_model_info(source)
    is_lora = kind == "lora"
    rank = _get(config, "lora.rank") or meta.get("rank")
    alpha = _get(config, "lora.alpha") or meta.get("alpha")
    targets = _as_list(_get(config, "lora.target_modules") or meta.get("target_modules"))
    steps = meta.get("training_steps") or meta.get("steps") or _get(config, "optimization.steps")
    lr = _get(config, "optimization.learning_rate") or meta.get("learning_rate")
    batch = _get(config, "optimization.batch_size") or meta.get("batch_size")
    accum = _get(config, "optimization.gradient_accumulation_steps")
    buckets = _as_list(meta.get("resolution_buckets") or _get(config, "data.resolution_buckets"))
    first_frame_p = _get(config, "conditioning.first_frame_conditioning_p")
    conditioning = _get(config, "conditioning.mode")
    trigger = trigger_word or meta.get("trigger_word") or None

    model_name = repo_id.split("/")[-1]
    front: dict[str, Any] = {}
    if base.hub_id:
        front["base_model"] = base.hub_id
        front["base_model_relation"] = "adapter" if is_lora else "finetune"
    front.update(
        {
            "library_name": "diffusers",
            "license": "other",
            "language": ["en"],
            "pipeline_tag": "text-to-video",
            "tags": ["ltx-video", "lora", *TAGS[1:]] if is_lora else [*TAGS[:1], "full-fine-tune", *TAGS[1:]],
        }
    )
    if trigger:
        front["instance_prompt"] = trigger
    if samples:
        front["widget"] = [{"text": prompt or model_name, "output": {"url": path}} for path, prompt in samples]

    rows = [("Training type", "LoRA" if is_lora else "Full fine-tune")]
    if steps:
        rows.append(("Steps", str(steps)))
    if lr:
        rows.append(("Learning rate", str(lr)))
    if is_lora and rank:
        rows.append(("LoRA rank", str(rank)))
    if is_lora and alpha:
        rows.append(("LoRA alpha", str(alpha)))
    if is_lora and targets:
        rows.append(("Target modules", ", ".join(f"`{t}`" for t in targets)))
    if batch:
        accumulation = f" × {accum} accumulation steps" if accum and int(accum) > 1 else ""
        rows.append(("Batch size", f"{batch}{accumulation}"))
    if buckets:
        rows.append(("Resolution buckets (WxHxF)", ", ".join(str(b) for b in buckets)))
    if conditioning == "reference_video":
        rows.append(("Conditioning", "IC-LoRA (reference video)"))
    elif first_frame_p:
        rows.append(("First-frame conditioning probability", str(first_frame_p)))
    table = "| Setting | Value |\n| --- | --- |\n" + "\n".join(f"| {k} | {_md_escape(v)} |" for k, v in rows)

    base_link = f"[{base.name}]({base.link})" if base.link else base.name
    base_section = f"- Model: {base_link}\n- Version: {base.version or 'see the model name'}"
    if source and base.hub_id is None:
        base_section += "\n- Trained from a local copy; load the same weights to use this model."

    trigger_section = (
        f"## Trigger word\n\nInclude `{trigger}` in your prompt to activate what this model learned."
        if trigger
        else "## Trigger word\n\nNo trigger word was recorded; describe the subject as the training captions did."
    )

    if is_lora:
        comfy_file = "lora_weights_comfy.safetensors"
        comfyui = (
            f"1. Download `{comfy_file}` and copy it to `ComfyUI/models/loras/`.\n"
            f"2. Load the LTX-Video base model ({base.name}) as usual (e.g. *Load Checkpoint* for the single-file "
            "checkpoint).\n"
            "3. Add a **LoraLoaderModelOnly** node between the model loader and the sampler, select the file, "
            "strength 1.0.\n"
            "4. The file uses ComfyUI's key names (`diffusion_model.…`, alpha stored per layer); "
            "`lora_weights.safetensors` is the diffusers version and does not load in ComfyUI."
        )
        if comfy_file not in files:
            comfyui += (
                "\n\nThis repository has no ComfyUI file; make one with "
                "`python scripts/convert_checkpoint.py lora_weights.safetensors --to-comfy`."
            )
    else:
        comfyui = (
            "1. Copy `model_weights_comfy.safetensors` to `ComfyUI/models/diffusion_models/` and load it with "
            "**Load Diffusion Model**; load the LTX-Video VAE and T5 text encoder as for the base model."
        )
        if "model_weights_comfy.safetensors" not in files:
            comfyui += (
                "\n\nThis repository only has the diffusers-named `model_weights.safetensors`; convert it with "
                "`python scripts/convert_checkpoint.py model_weights.safetensors --to-comfy` first."
            )

    prompt_example = (
        samples[0][1] if samples and samples[0][1] else (f"{trigger}, " if trigger else "") + "a video of ..."
    )
    pipe_repo = base.diffusers_repo or "Lightricks/LTX-Video"
    if is_lora:
        code = (
            "import torch\n"
            "from diffusers import LTXPipeline\n"
            "from diffusers.utils import export_to_video\n\n"
            f'pipe = LTXPipeline.from_pretrained("{pipe_repo}", torch_dtype=torch.bfloat16).to("cuda")\n'
            f'pipe.load_lora_weights("{repo_id}", weight_name="lora_weights.safetensors",'
            f' adapter_name="{model_name}")\n'
            f"video = pipe(prompt={json.dumps(prompt_example)}, width=768, height=512, num_frames=121).frames[0]\n"
            'export_to_video(video, "output.mp4", fps=24)'
        )
    else:
        code = (
            "import torch\n"
            "from diffusers import LTXPipeline, LTXVideoTransformer3DModel\n"
            "from huggingface_hub import hf_hub_download\n"
            "from safetensors.torch import load_file\n\n"
            f'transformer = LTXVideoTransformer3DModel.from_pretrained("{pipe_repo}", subfolder="transformer")\n'
            f'transformer.load_state_dict(load_file(hf_hub_download("{repo_id}", "model_weights.safetensors")))\n'
            f'pipe = LTXPipeline.from_pretrained("{pipe_repo}", transformer=transformer.to(torch.bfloat16), '
            'torch_dtype=torch.bfloat16).to("cuda")'
        )
    if base.diffusers_repo is None:
        code = (
            f"# {base.name} has no diffusers-format repository; load it with from_single_file or a converted copy.\n"
            + code
        )

    samples_section = ""
    if samples:
        columns = min(GRID_COLUMNS, len(samples))
        cells = [
            f"![sample {i + 1}]({path})<br>"
            f"<details><summary>Prompt</summary>{_md_escape(prompt) or '(not recorded)'}</details>"
            for i, (path, prompt) in enumerate(samples)
        ]
        lines = ["| " + " | ".join([""] * columns) + " |", "| " + " | ".join(["---"] * columns) + " |"]
        for start in range(0, len(cells), columns):
            row = cells[start : start + columns]
            lines.append("| " + " | ".join(row + [""] * (columns - len(row))) + " |")
        when = f" (step {samples_step})" if samples_step is not None else ""
        samples_section = f"## Samples\n\nValidation videos from the last round{when}:\n\n" + "\n".join(lines)

    files_list = "\n".join(f"- `{name}`" for name in files)
    values = {
        "front_matter": yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(),
        "model_name": model_name,
        "summary": (
            f"A {'LoRA' if is_lora else 'full fine-tune'} for {base.name}, trained with "
            "[ComfyUI-LTX-Trainer](https://github.com/ltx-trainer/ComfyUI-LTX-Trainer)."
        ),
        "base_model_section": base_section,
        "settings_table": table,
        "trigger_section": trigger_section,
        "comfyui_section": comfyui,
        "diffusers_code": code,
        "samples_section": samples_section,
        "files_list": files_list,
        "base_model_name": base.name,
    }
    return string.Template(_TEMPLATE.read_text(encoding="utf-8")).substitute(values)


# --------------------------------------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------------------------------------


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


def _hint_for_status(status: int, repo_id: str) -> str:
    namespace = repo_id.split("/")[0]
    if status == 401:
        return (
            "the token was rejected (invalid or expired); "
            "create a write token at https://huggingface.co/settings/tokens "
            "and set HF_TOKEN or run `hf auth login`"
        )
    if status == 403:
        return (
            f"the token may not write to '{namespace}' (read-only token, or no write access to that organisation); "
            "use a write token with access to it, or a repo id under your own user name"
        )
    if status == 404:
        return f"'{repo_id}' was not found or is not visible to this token; check the repo id and the token's owner"
    if status == 409:
        return "the Hub reported a conflict (a concurrent change); rerun the push"
    if status == 413:
        return "a file is too large for a regular upload; check the Hub's file size limits"
    if status == 429:
        return "the Hub is rate-limiting this token; wait a few minutes and rerun the push"
    if status >= 500:
        return "the Hub had a server error; wait and rerun the push (nothing was committed)"
    return "rerun the push; if it persists, check https://status.huggingface.co"


def _wrap_hub_errors(action: str, repo_id: str, endpoint: str):
    """Context manager turning huggingface_hub/HTTP/network errors into HubError with URL, status and a fix."""
    import contextlib

    from huggingface_hub import errors as hf_errors

    @contextlib.contextmanager
    def _ctx():
        try:
            yield
        except hf_errors.OfflineModeIsEnabled:
            raise HubError(f"cannot {action}: HF_HUB_OFFLINE is set; unset it to upload to {endpoint}") from None
        except hf_errors.HfHubHTTPError as exc:
            response = exc.response
            status = response.status_code if response is not None else 0
            url = str(response.request.url) if response is not None and response.request is not None else endpoint
            detail = f" ({exc.server_message.strip()})" if getattr(exc, "server_message", None) else ""
            raise HubError(
                f"cannot {action} for {repo_id}: HTTP {status} from {url}{detail}; {_hint_for_status(status, repo_id)}"
            ) from None
        except OSError as exc:
            if exc.filename:  # a local file, not the network (e.g. a weight file removed while uploading)
                raise HubError(
                    f"cannot {action} for {repo_id}: cannot read {exc.filename} ({exc.strerror}); "
                    "check that the output folder is complete and readable, then rerun the push"
                ) from None
            raise HubError(
                f"cannot {action} for {repo_id}: could not reach {endpoint} ({type(exc).__name__}: {exc}); check the "
                "network connection, proxy settings (HTTPS_PROXY) and HF_ENDPOINT, then rerun the push"
            ) from None
        except hf_errors.HTTPError as exc:  # connection refused, DNS, TLS, timeouts
            raise HubError(
                f"cannot {action} for {repo_id}: could not reach {endpoint} ({type(exc).__name__}: {exc}); check the "
                "network connection, proxy settings (HTTPS_PROXY) and HF_ENDPOINT, then rerun the push"
            ) from None
        except ValueError as exc:  # huggingface_hub raises ValueError for e.g. invalid README metadata
            raise HubError(f"cannot {action} for {repo_id}: {exc}") from None

    return _ctx()


def _scrub(text: str, token: str, where: str) -> str:
    """Last line of defence: a token must never be published, even if it slipped into a config value."""
    if token and token in text:
        logger.warning("%s contained the Hub token; it was replaced by '***' in the uploaded copy", where)
        return text.replace(token, "***")
    return text


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
    and the last validation round's samples as GIFs under ``sample_videos/``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise HubError(f"{output_dir}: output folder not found; pass the output_dir of a finished training run")
    kind, weight_files = find_weight_files(output_dir)
    _check_repo_id(repo_id)
    token = resolve_token(token)
    api = HfApi(endpoint=endpoint, token=token)
    hub_url = api.endpoint

    cfg = _config_dict(output_dir, config)
    prompts = _get(cfg, "validation.prompts") or []
    samples = last_validation_samples(output_dir, prompts if isinstance(prompts, list) else None)
    weights_meta = _weights_metadata(weight_files[0])

    if "/" not in repo_id:
        with _wrap_hub_errors("look up the token's user name", repo_id, hub_url):
            user = api.whoami()["name"]
        repo_id = f"{user}/{repo_id}"

    with tempfile.TemporaryDirectory(prefix="ltx_hub_") as tmp:
        staging = Path(tmp)
        operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in weight_files]

        config_path = output_dir / CONFIG_FILE
        config_text = None
        if config_path.is_file():
            config_text = config_path.read_text(encoding="utf-8", errors="replace")
        elif cfg:
            import yaml

            config_text = yaml.safe_dump(cfg, sort_keys=False)
        if config_text is not None:
            staged = staging / CONFIG_FILE
            staged.write_text(_scrub(config_text, token, CONFIG_FILE), encoding="utf-8")
            operations.append(CommitOperationAdd(path_in_repo=CONFIG_FILE, path_or_fileobj=str(staged)))

        card_samples: list[tuple[str, str]] = []
        for sample in samples:
            repo_path = f"{HUB_SAMPLES_DIR}/{sample.path.stem}.gif"
            try:
                gif = video_to_gif(sample.path, staging / repo_path)
            except Exception as exc:  # one bad video must not block publishing the model
                logger.warning("%s: cannot convert to GIF (%s); it is left out of the model card", sample.path, exc)
                continue
            operations.append(CommitOperationAdd(path_in_repo=repo_path, path_or_fileobj=str(gif)))
            card_samples.append((repo_path, sample.prompt))

        card = render_model_card(
            repo_id=repo_id,
            kind=kind,
            files=[p.name for p in weight_files],
            config=cfg,
            weights_metadata=weights_meta,
            samples=card_samples,
            trigger_word=trigger_word,
            samples_step=samples[0].step if samples else None,
        )
        readme = staging / "README.md"
        readme.write_text(_scrub(card, token, "README.md"), encoding="utf-8")
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(readme)))

        with _wrap_hub_errors("create the repository", repo_id, hub_url):
            repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        what = "LoRA" if kind == "lora" else "fine-tune"
        with _wrap_hub_errors("upload the files", repo_id, hub_url):
            api.create_commit(
                repo_id,
                operations,
                commit_message=f"Upload LTX-Video {what} ({len(operations)} files)",
                repo_type="model",
            )
    url = str(repo_url)
    logger.info("uploaded %d files to %s", len(operations), url)
    return url
