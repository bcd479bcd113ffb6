"""CompareCheckpoints: one sample per LoRA checkpoint of a training run, to see how the LoRA evolved and pick one.

Each LoRA file the run kept (``checkpoints/lora_weights_step_NNNNN_comfy.safetensors``, then the final
``lora_weights_comfy.safetensors``), and optionally the base model without any LoRA, is applied to the user's MODEL
with ComfyUI's own LoRA loader and sampled with ComfyUI's own KSampler code from the same latent, seed and settings
(:func:`nodes.comfy.apply_lora`, :func:`nodes.comfy.ksample`). The samples come out as one LATENT batch in step
order, for ComfyUI's VAE Decode.

"Best" has no ground truth here (no held-out data, and the training loss says nothing about how a sample looks):
the node picks the newest LoRA whose health scan passes (no NaN/Inf, it changes the model), which is normally the
final one, and says so; the user looks at the decoded samples and enters the step they prefer in ``pick_step``.
Queueing again with only ``pick_step``/``save_as``/``overwrite`` changed reuses the samples (see :class:`_Run`).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import comfy
from . import types as T
from .schema_widgets import SEED_MAX

log = logging.getLogger("ltx_trainer.nodes")

WHAT = "CompareCheckpoints"
KEEP_CHECKPOINTS_HINT = (
    "Train LoRA keeps them when checkpoint_interval is below steps (e.g. steps / 4) and keep_last_n is -1 (all) or at "
    "least the number you want to compare; set both and queue the training again (other settings make a new job)"
)


@dataclass(frozen=True)
class Entry:
    """One sample of the comparison: the base model (``lora`` None) or the LoRA weights saved at ``step``."""

    step: int  # training step of the weights; 0 for the base model
    lora: Path | None  # ComfyUI-layout LoRA file
    final: bool = False  # the run's final LoRA (lora_weights_comfy.safetensors)
    health: Any = None  # ltx_train_lib.lora_health.LoraHealth of the file; None for the base model

    @property
    def label(self) -> str:
        if self.lora is None:
            return "base model (no LoRA)"
        return f"step {self.step}{' (final)' if self.final else ''}: {self.lora.name}"

    @property
    def healthy(self) -> bool:
        return self.lora is not None and self.health is not None and bool(self.health.ok)

    def signature(self) -> tuple:
        """What the sample depends on besides the node's inputs: the file, as it is on disk now."""
        if self.lora is None:
            return ("base",)
        st = self.lora.stat()
        return (str(self.lora), st.st_size, st.st_mtime_ns)


def _comfy_file_of(diffusers_file: Path) -> Path:
    """The ComfyUI-layout copy of a diffusers-layout LoRA file beside it, made (atomically) when missing."""
    from ltx_train_lib import export

    target = diffusers_file.with_name(f"{diffusers_file.stem}_comfy.safetensors")
    return target if target.is_file() else export.convert_file(diffusers_file, to="comfy", output_path=target)


def final_lora_file(lora: T.LoraResult) -> Path | None:
    """The run's final LoRA in ComfyUI's layout (made from the diffusers file when it was deleted), or None."""
    if lora.lora_comfy is not None and lora.lora_comfy.is_file():
        return lora.lora_comfy
    return _comfy_file_of(lora.lora) if lora.lora.is_file() else None


def comparison_entries(lora: T.LoraResult, include_base: bool) -> list[Entry]:
    """The base model (optional), each checkpoint's LoRA and the final LoRA, in step order, each with its health
    scan. The checkpoint of the final step holds the final weights: it is listed once, as the final LoRA."""
    from ltx_train_lib.lora_health import scan_file
    from ltx_train_lib.training.checkpoint import checkpoints_dir, list_lora_checkpoints

    output_dir = Path(lora.lora).parent  # where the trainer wrote (job.json may put it outside the job folder)
    final = final_lora_file(lora)
    files: dict[int, Path] = {}
    for ckpt in list_lora_checkpoints(output_dir):
        if final is not None and ckpt.step == lora.steps:
            continue
        files[ckpt.step] = ckpt.comfy if ckpt.comfy is not None else _comfy_file_of(ckpt.diffusers)  # type: ignore[arg-type]
    if not files:
        folder = checkpoints_dir(output_dir)
        where = f"'{folder}' holds none" if folder.is_dir() else f"'{folder}' does not exist"
        final_text = f"only the final LoRA ('{final}') was found" if final is not None else f"nor is there a final LoRA ('{lora.lora}')"
        raise FileNotFoundError(
            f"{WHAT}.lora: no LoRA checkpoints of job '{lora.name}' to compare: looked for "
            f"lora_weights_step_NNNNN_comfy.safetensors (or lora_weights_step_NNNNN.safetensors) other than the final "
            f"step's, and {where}; {final_text}. {KEEP_CHECKPOINTS_HINT}"
        )
    entries = [Entry(step, path, health=scan_file(path)) for step, path in files.items()]
    if final is not None:
        entries.append(Entry(lora.steps, final, final=True, health=scan_file(final)))
    entries.sort(key=lambda e: (e.step, e.final))
    return ([Entry(0, None)] if include_base else []) + entries


def pick_entry(entries: list[Entry], pick_step: int) -> tuple[Entry, str]:
    """The LoRA the node names as its pick, and why. ``pick_step`` 0: the newest whose health scan passes; else the
    one saved at that step (which must be healthy: an unhealthy LoRA would only make noise or nothing)."""
    from ltx_train_lib.lora_health import LoraHealthError

    loras = [e for e in entries if e.lora is not None]
    steps = ", ".join(str(e.step) for e in loras)
    if pick_step == 0:
        healthy = [e for e in loras if e.healthy]
        if not healthy:
            raise LoraHealthError(
                f"{WHAT}.pick_step: no LoRA of this run passes its health scan (steps {steps}): "
                + "; ".join(f"step {e.step}: {e.health.summary()}" for e in loras)
                + ". Retrain (see the health line of Train LoRA for the fix)"
            )
        return healthy[-1], (
            "the newest LoRA whose health scan passes (there is no ground truth for 'best': look at the decoded "
            "samples and set pick_step to the step you prefer)"
        )
    chosen = next((e for e in loras if e.step == pick_step), None)
    if chosen is None:
        raise ValueError(
            f"{WHAT}.pick_step: no LoRA of this run was saved at step {pick_step}; the compared ones are at steps "
            f"{steps} (0 picks the newest healthy one)"
        )
    if not chosen.healthy:
        raise LoraHealthError(
            chosen.health.failure_message(str(chosen.lora)) + f". {WHAT}.pick_step: pick another step ({steps})"
        )
    return chosen, f"step {pick_step}, as pick_step asks"


def _header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def training_conditioning(lora: T.LoraResult, lora_file: Path) -> tuple[list, Path]:
    """CONDITIONING from the run's own cache: the caption embedding of the first training clip (the trainer's
    ``.precomputed/conditions``, made by the text encoding ComfyUI feeds LTX-Video: T5 with its attention mask),
    at the LoRA's frame rate. Returns (conditioning, the conditions file). LTX-Video only: an LTX-2 cache holds
    another text pipeline's output."""
    import torch

    from ltx_train_lib.config import load_config
    from ltx_train_lib.data import CONDITIONS_DIR, resolve_precomputed_root
    from ltx_train_lib.export import family_of_metadata
    from ltx_train_lib.training.outputs import FRAME_RATE_KEY

    meta = _header(lora_file)
    family = family_of_metadata(meta)
    connect = "connect a CONDITIONING (e.g. CLIP Text Encode with the model's text encoder) to 'positive'"
    if family.name != "ltxv":
        raise ValueError(
            f"{WHAT}.positive: not connected, and only an LTX-Video LoRA can be compared on its training data's cached "
            f"caption embedding (this one is for {family.display_name}); {connect}"
        )
    if lora.config_file is None or not Path(lora.config_file).is_file():
        raise ValueError(
            f"{WHAT}.positive: not connected, and job '{lora.name}' has no training config ('{lora.config_file}') "
            f"naming its dataset; {connect}"
        )
    cfg = load_config(lora.config_file)
    root = resolve_precomputed_root(cfg.data.preprocessed_data_root)
    files = sorted(p for p in (root / CONDITIONS_DIR).rglob("*.pt") if not p.name.startswith("."))
    if not files:
        raise ValueError(f"{WHAT}.positive: not connected, and '{root / CONDITIONS_DIR}' holds no cached caption; {connect}")
    cond = torch.load(files[0], map_location="cpu", weights_only=True)
    extra: dict[str, Any] = {}
    if cond.get("prompt_attention_mask") is not None:
        extra["attention_mask"] = cond["prompt_attention_mask"].long().unsqueeze(0)
    if meta.get(FRAME_RATE_KEY):
        extra["frame_rate"] = float(meta[FRAME_RATE_KEY])  # what LTXVConditioning sets; the model's default is 25
    return [[cond["prompt_embeds"].float().unsqueeze(0), extra]], files[0]


def zero_conditioning(conditioning: list) -> list:
    """ComfyUI's ConditioningZeroOut: the same entries with zeroed embeddings (and pooled output)."""
    import torch

    out = []
    for tensor, extra in conditioning:
        extra = dict(extra)
        if extra.get("pooled_output") is not None:
            extra["pooled_output"] = torch.zeros_like(extra["pooled_output"])
        out.append([torch.zeros_like(tensor), extra])
    return out


NAME_CARD = (1, 64, 256)  # frames, height, width of a tile when no VAE is connected


def comparison_image(entries: list[Entry], outs: list[dict[str, Any]], vae: Any, chosen: Entry) -> Any:
    """The labelled grid (nodes/comparison_grid.py) of every entry's decoded sample(s); name cards without a VAE."""
    import torch

    from .comparison_grid import labelled_grid

    videos, labels = [], []
    for entry, out in zip(entries, outs, strict=True):
        name = entry.label + (" (picked)" if entry is chosen else "")
        decoded = comfy.vae_decode(vae, out["samples"]) if vae is not None else None
        count = out["samples"].shape[0]
        for k in range(count):
            videos.append(decoded[k] if decoded is not None else torch.zeros(*NAME_CARD, 3))
            labels.append(name if count == 1 else f"{name} #{k}")
    return labelled_grid(videos, labels)


def preview_of(grid: Any, name: str) -> dict[str, list]:
    """The grid's middle frame as the node's image preview."""
    import torch

    frame = grid[grid.shape[0] // 2]
    rgb = (frame.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return comfy.ui_images([comfy.save_preview_image(rgb, f"compare_{name}")])


def batch_latents(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """The samples of every entry as one LATENT batch, entry after entry (each entry keeps its own batch)."""
    import torch

    out = {k: v for k, v in outs[0].items() if k != "batch_index"}
    out["samples"] = torch.cat([o["samples"] for o in outs], dim=0)
    mask = out.get("noise_mask")
    if mask is not None and mask.shape[0] == outs[0]["samples"].shape[0] and mask.shape[0] > 1:
        out["noise_mask"] = torch.cat([mask] * len(outs), dim=0)  # a batch-1 mask broadcasts as it is
    return out


@dataclass
class _Run:
    """The samples of a node's last run. Queueing again with the same model, conditioning, latent and sampling
    settings (only pick_step, save_as or overwrite changed, which ComfyUI re-runs the node for) reuses them. The
    model is held weakly (a model ComfyUI dropped is never kept alive); conditioning and latent are compared by
    identity, the way ComfyUI's cache hands back the same objects while their nodes are unchanged."""

    model: Any  # weakref.ref to the MODEL
    objects: tuple
    params: tuple
    samples: dict[tuple, dict[str, Any]] = field(default_factory=dict)

    def matches(self, model: Any, objects: tuple, params: tuple) -> bool:
        return (
            self.model() is model
            and len(objects) == len(self.objects)
            and all(a is b for a, b in zip(objects, self.objects, strict=True))
            and params == self.params
        )


_runs: dict[str, _Run] = {}  # node id -> its last run


def _run_for(node_id: str | None, model: Any, objects: tuple, params: tuple) -> _Run:
    key = str(node_id)
    run = _runs.get(key)
    if run is not None and run.matches(model, objects, params):
        return run
    try:
        ref = weakref.ref(model)
    except TypeError:  # not weak-referenceable: never reused

        def ref() -> None:
            return None

    run = _Run(ref, objects, params)
    for dead in [k for k, r in _runs.items() if r.model() is None]:
        _runs.pop(dead, None)
    _runs[key] = run
    return run


class CompareCheckpoints:
    """Sample every LoRA checkpoint of a training run (and the base model) on the same latent and seed."""

    CATEGORY = "LTX Trainer/evaluation"
    SEARCH_ALIASES = ["lora comparison", "compare loras", "lora checkpoints", "best checkpoint", "pick checkpoint",
                      "lora steps", "checkpoint grid"]
    DESCRIPTION = (
        "Applies each LoRA checkpoint the training run kept (checkpoints/ and the final LoRA, in step order; the "
        "base model without LoRA first) to the model with ComfyUI's LoRA loader and samples it with KSampler's code "
        "from the same latent and seed. Outputs one latent per checkpoint as a batch (for VAE Decode), the list of "
        "checkpoints, and the picked LoRA, optionally copied into models/loras."
    )
    RETURN_TYPES = ("LATENT", "STRING", "STRING", "IMAGE")
    RETURN_NAMES = ("latents", "checkpoints", "picked_lora", "comparison")
    OUTPUT_TOOLTIPS = (
        "One sample per entry of 'checkpoints', in that order (batch index in brackets): decode with VAE Decode.",
        "The compared entries, one per line: batch index, training step and LoRA file; the picked one is marked.",
        "The picked LoRA: its name in models/loras when save_as is set (what LoRA loaders list), else its file path.",
        "The samples decoded with 'vae', side by side under their names (step, base model), frame by frame: a "
        "labelled video grid for Save Animated WEBP, Create Video or Preview Image. Without a VAE: the name cards.",
    )
    FUNCTION = "compare"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        samplers, schedulers = comfy.sampler_names(), comfy.scheduler_names()
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The base model the LoRA was trained on (e.g. from Load Checkpoint), "
                                    "patched as you sample with it (e.g. ModelSamplingLTXV). Each LoRA is applied "
                                    "to it in turn; the model itself is left unchanged."}),
                "lora": (T.LORA, {"tooltip": "The training run (from Train LoRA): the LoRA files in its checkpoints/ "
                                  "folder and its final LoRA are compared."}),
                "sampling_seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "tooltip": "KSampler's seed: the "
                                          "same noise for every checkpoint. (Not named 'seed', which the editor "
                                          "would randomize after each run.)"}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "KSampler's steps, per checkpoint."}),
                "cfg": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "KSampler's classifier-free guidance scale (LTX-Video: about 3)."}),
                "sampler_name": (samplers, {"default": "euler" if "euler" in samplers else samplers[0],
                                            "tooltip": "KSampler's sampler."}),
                "scheduler": (schedulers, {"default": "simple" if "simple" in schedulers else schedulers[0],
                                           "tooltip": "KSampler's scheduler."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "KSampler's denoise: 1.0 samples from pure noise."}),
                "latent_image": ("LATENT", {"tooltip": "The latent to sample (e.g. from Empty LTXV Latent Video), the "
                                            "same for every checkpoint."}),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                       "tooltip": "LoRA strength for every checkpoint (LoraLoaderModelOnly's)."}),
                "include_base_model": ("BOOLEAN", {"default": True, "tooltip": "Also sample the model without any "
                                                   "LoRA, first in the batch, as the baseline."}),
                "pick_step": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip": "Which LoRA "
                                      "'picked_lora' names and save_as copies. 0 = the newest one whose health scan "
                                      "passes (normally the final LoRA): there is no ground truth for 'best', so "
                                      "look at the decoded samples and enter the training step of the one you "
                                      "prefer; queued again, the samples are reused, not sampled again."}),
                "save_as": ("STRING", {"default": "", "tooltip": "Empty = copy nothing. A name copies the picked LoRA "
                                       "into models/loras under it ('.safetensors' is added; 'a/b' makes a "
                                       "sub-folder), so LoRA loaders list it."}),
                "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace a different LoRA already saved under "
                                          "save_as (an identical one is kept)."}),
            },
            "optional": {
                "vae": ("VAE", {"tooltip": "The VAE of the model (e.g. from Load Checkpoint): decodes every sample into "
                                "the labelled 'comparison' grid and the node's preview."}),
                "positive": ("CONDITIONING", {"tooltip": "The prompt (e.g. CLIP Text Encode + LTXV Conditioning). Not "
                                              "connected: the cached caption embedding of the first training clip, "
                                              "at the LoRA's frame rate (LTX-Video LoRAs only), so no text encoder "
                                              "has to be loaded."}),
                "negative": ("CONDITIONING", {"tooltip": "The negative prompt. Not connected: the positive one "
                                              "zeroed (Conditioning Zero Out)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def compare(
        self,
        model: Any,
        lora: T.LoraResult,
        sampling_seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        denoise: float,
        latent_image: dict[str, Any],
        strength: float,
        include_base_model: bool,
        pick_step: int,
        save_as: str,
        overwrite: bool,
        positive: Any = None,
        negative: Any = None,
        vae: Any = None,
        unique_id: str | None = None,
    ) -> dict[str, Any]:
        from .export import save_into_loras

        entries = comparison_entries(lora, include_base_model)
        chosen, why = pick_entry(entries, int(pick_step))
        notes: list[str] = []
        objects: tuple = (positive, negative, latent_image)
        cond_source: tuple = ()
        if positive is None:
            assert chosen.lora is not None
            positive, cond_file = training_conditioning(lora, chosen.lora)
            st = cond_file.stat()
            cond_source = (str(cond_file), st.st_size, st.st_mtime_ns)
            notes.append(f"positive: the cached caption embedding of training clip '{cond_file.stem}' ({cond_file})")
        if negative is None:
            negative = zero_conditioning(positive)
            notes.append("negative: the positive prompt zeroed")
        params = (int(sampling_seed), int(steps), float(cfg), sampler_name, scheduler, float(denoise), float(strength),
                  cond_source)
        run = _run_for(unique_id, model, objects, params)
        bar = comfy.Progress(len(entries) * steps, unique_id, "comparing checkpoints")
        outs: list[dict[str, Any]] = []
        reused = 0
        for i, entry in enumerate(entries):
            comfy.throw_if_interrupted()  # Cancel between checkpoints (ComfyUI's sampler also checks it per step)
            sig = entry.signature()
            if sig in run.samples:
                outs.append(run.samples[sig])
                reused += 1
                bar.update((i + 1) * steps)
                continue
            comfy.progress_text(f"sampling {i + 1}/{len(entries)}: {entry.label}", unique_id)
            patched = model
            if entry.lora is not None:
                patched, check = comfy.apply_lora(model, entry.lora, strength, f"{WHAT}.model")
                if check.not_loaded:
                    shown = ", ".join(check.not_loaded[:8]) + (" ..." if len(check.not_loaded) > 8 else "")
                    raise RuntimeError(
                        f"{WHAT}.model: {len(check.not_loaded)} of {check.keys} keys of {entry.lora.name} patched no "
                        f"weight of the connected model: {shown}; the model is not the one this LoRA was trained on "
                        "(check the checkpoint and its version)"
                    )

            def on_step(step: int, total: int, base: int = i * steps) -> None:
                bar.update(base + round(step * steps / max(1, total)))

            out = comfy.ksample(patched, int(sampling_seed), int(steps), float(cfg), sampler_name, scheduler, positive,
                                negative, latent_image, float(denoise), on_step=on_step)
            del patched  # the next LoRA's clone replaces it in ComfyUI's loaded models
            run.samples[sig] = out
            outs.append(out)
        batch = outs[0]["samples"].shape[0]
        rows = []
        for i, entry in enumerate(entries):
            index = f"[{i * batch}]" if batch == 1 else f"[{i * batch}-{(i + 1) * batch - 1}]"
            mark = "  <- picked" if entry is chosen else ""
            sick = f"  ({entry.health.summary()})" if entry.lora is not None and not entry.healthy else ""
            rows.append(f"{index} {entry.label}{sick}{mark}")
        picked = str(chosen.lora)
        if save_as.strip():
            assert chosen.lora is not None  # and healthy: pick_entry refuses the others
            picked, target, status = save_into_loras(chosen.lora, save_as, overwrite, f"{WHAT}.save_as")
            notes.append(f"{status}: {target}")
        count = sum(e.lora is not None for e in entries)
        head = (f"{count} LoRA(s) of '{lora.name}'{' and the base model' if include_base_model else ''}: seed "
                f"{sampling_seed}, {steps} steps, cfg {cfg}, {sampler_name}/{scheduler}, strength {strength}")
        lines = [head, *rows, f"picked: step {chosen.step}: {chosen.lora} ({why})", *notes]
        if reused:
            lines.append(f"reused the samples of the previous run for {reused} of {len(entries)} entries")
        grid = comparison_image(entries, outs, vae, chosen)
        if vae is None:
            lines.append("comparison: connect the model's VAE to 'vae' to see the decoded samples side by side")
        ui = {**comfy.ui_text(lines, unique_id), **preview_of(grid, lora.name)}
        return {"ui": ui, "result": (batch_latents(outs), "\n".join(rows), picked, grid)}
