"""Train on what ComfyUI feeds the model, and hand ComfyUI what it needs to read back (issue 9).

ComfyUI is not importable here, so its rules are written out below as formulas derived from its source, each citing
the file and function (Comfy-Org/ComfyUI 0.3.64 ``a125cd84``; yzkee/ComfyUI 0.33.0 ``783545f6`` has the same code
for every rule used here):

- ``comfy/model_detection.py`` ``detect_unet_config``, "Lightricks ltxv" branch: ``num_layers`` = number of
  ``transformer_blocks.N.``, ``attention_head_dim`` = ``attn2.to_k.weight.shape[0] // 32``, ``cross_attention_dim``
  = ``attn2.to_k.weight.shape[1]``, then ``dit_config.update(json.loads(metadata["config"]).get("transformer", {}))``
  when the safetensors header has ``config``; the rest are ``LTXVModel.__init__`` defaults (``in_channels`` 128,
  ``num_attention_heads`` 32, ``caption_channels`` 4096, ``causal_temporal_positioning`` False).
- ``comfy/ldm/lightricks/symmetric_patchifier.py`` ``latent_to_pixel_coords``: pixel = latent index * (8, 32, 32);
  with ``causal_fix`` the time row becomes ``(t + 1 - 8).clamp(min=0)``.
- ``comfy/ldm/lightricks/model.py`` ``LTXVModel._forward``: the time row is multiplied by ``1.0 / frame_rate``
  (``frame_rate`` from ``LTXVConditioning``, default 25: ``comfy/model_base.py`` ``LTXV.extra_conds``), then
  ``precompute_freqs_cis(coords, dim=inner_dim, max_pos=[20, 2048, 2048], theta=10000)``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ltx_train_lib.config import FlowMatchingConfig, config_from_dict
from ltx_train_lib.data import BucketBatchPlan, PrecomputedDataset, collate
from ltx_train_lib.errors import DatasetError, ModelLoadError
from ltx_train_lib.models.family import CAUSAL_TEMPORAL_POSITIONING, ForwardInputs, ModelComponents, ResolvedSource
from ltx_train_lib.models.loader import load_components
from ltx_train_lib.models.ltxv import loading
from ltx_train_lib.models.registry import get_family, resolve_source
from ltx_train_lib.training.outputs import weights_metadata
from ltx_train_lib.training.strategy import build_strategy
from tests.conftest import make_precomputed, tiny_config_dict

FAMILY = get_family("ltxv")
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ ComfyUI's rules, written out


def comfy_pixel_coords(f: int, h: int, w: int, frame_rate: float, causal_fix: bool) -> torch.Tensor:
    """symmetric_patchifier.get_latent_coords + latent_to_pixel_coords, then model.py's ``* (1.0 / frame_rate)``:
    [1, 3, F*H*W] (time in seconds, pixel row, pixel column), token order frame, row, column."""
    rows = []
    for t in range(f):
        for y in range(h):
            for x in range(w):
                pt = t * 8
                if causal_fix:
                    pt = max(pt + 1 - 8, 0)
                rows.append((pt, y * 32, x * 32))
    coords = torch.tensor(rows, dtype=torch.int64).T[None].to(torch.float32)  # ComfyUI: int coords, then float32
    coords[:, 0] = coords[:, 0] * (1.0 / frame_rate)
    return coords


def comfy_freqs_cis(coords: torch.Tensor, dim: int, theta: float = 10000.0, max_pos=(20, 2048, 2048)):
    """model.py ``precompute_freqs_cis`` (0.3.64), written out: fractional positions coords/max_pos, frequencies
    theta ** linspace(0, 1, dim // 6) * pi / 2, cos/sin of freq * (2 * pos - 1) interleaved, dim % 6 padded first."""
    frac = torch.stack([coords[:, i] / max_pos[i] for i in range(3)], dim=-1)  # [B, N, 3]
    indices = theta ** torch.linspace(math.log(1, theta), math.log(theta, theta), dim // 6, dtype=torch.float32)
    indices = indices * math.pi / 2
    freqs = (indices * (frac.unsqueeze(-1) * 2 - 1)).transpose(-1, -2).flatten(2)
    cos, sin = freqs.cos().repeat_interleave(2, dim=-1), freqs.sin().repeat_interleave(2, dim=-1)
    if dim % 6:
        cos = torch.cat([torch.ones_like(cos[:, :, : dim % 6]), cos], dim=-1)
        sin = torch.cat([torch.zeros_like(sin[:, :, : dim % 6]), sin], dim=-1)
    return cos, sin


def comfy_detect_ltxv(state_dict: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> dict:
    """model_detection.detect_unet_config's LTX-Video branch plus LTXVModel's defaults for what it leaves out."""
    keys = list(state_dict)
    blocks = 0
    while any(k.startswith(f"transformer_blocks.{blocks}.") for k in keys):
        blocks += 1
    shape = state_dict["transformer_blocks.0.attn2.to_k.weight"].shape
    dit = {"image_model": "ltxv", "num_layers": blocks, "attention_head_dim": shape[0] // 32, "cross_attention_dim": shape[1]}
    if metadata is not None and "config" in metadata:
        dit.update(json.loads(metadata["config"]).get("transformer", {}))
    defaults = {"in_channels": 128, "num_attention_heads": 32, "caption_channels": 4096, "causal_temporal_positioning": False}
    return {**defaults, **dit}


def comfy_expected_shapes(dit: dict) -> dict[str, tuple[int, ...]]:
    """Parameter shapes LTXVModel(**dit) builds (model.py: patchify_proj, caption_projection, blocks, proj_out)."""
    inner = dit["num_attention_heads"] * dit["attention_head_dim"]
    shapes = {
        "patchify_proj.weight": (inner, dit["in_channels"]),
        "caption_projection.linear_1.weight": (inner, dit["caption_channels"]),
        "scale_shift_table": (2, inner),
        "proj_out.weight": (dit["in_channels"], inner),
    }
    for i in range(dit["num_layers"]):
        shapes[f"transformer_blocks.{i}.attn1.to_q.weight"] = (inner, inner)
        shapes[f"transformer_blocks.{i}.attn2.to_k.weight"] = (inner, dit["cross_attention_dim"])
        shapes[f"transformer_blocks.{i}.attn1.q_norm.weight"] = (inner,)
    return shapes


# ------------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tiny_transformer():
    return load_components("tiny", ("transformer",)).transformer.eval()


def _components(causal: bool) -> ModelComponents:
    return ModelComponents(source=ResolvedSource("tiny", "tiny"), extras={CAUSAL_TEMPORAL_POSITIONING: causal})


def _inputs(f=3, h=2, w=2, b=2, fps=24.0, causal=False, seed=0) -> ForwardInputs:
    g = torch.Generator().manual_seed(seed)
    n = f * h * w
    return ForwardInputs(
        tokens=torch.randn(b, n, 8, generator=g),
        timesteps=torch.full((b, n), 500.0),
        prompt_embeds=torch.randn(b, 6, 32, generator=g),
        prompt_attention_mask=torch.ones(b, 6, dtype=torch.bool),
        latent_shape=(f, h, w),
        fps=fps,
        causal_temporal_positioning=causal,
    )


class Spy(torch.nn.Module):
    """The transformer, recording the keyword arguments of every call."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls: list[dict] = []

    def forward(self, **kwargs):
        self.calls.append(kwargs)
        return self.model(**kwargs)


def _export_tiny(tiny_transformer, path: Path, *, causal: bool | None) -> Path:
    """The tiny transformer as a single file the way a full fine-tune writes it, with chosen ``config`` metadata."""
    from ltx_train_lib import export

    meta = FAMILY.full_model_metadata(tiny_transformer, _components(bool(causal)))
    if causal is None:
        meta.pop("config")
    export.save_full_model(tiny_transformer.state_dict(), path, meta)
    return path


def _set_fps(root: Path, fps_by_index: dict[int, float]) -> None:
    for i, fps in fps_by_index.items():
        path = root / ".precomputed" / "latents" / f"clip_{i:03d}.mp4.pt"
        lat = torch.load(path, weights_only=True)
        lat["fps"] = fps
        torch.save(lat, path)


# ------------------------------------------------------------------------------------------------ 1. RoPE offset


def test_token_positions_are_comfyuis_pixel_coords_with_and_without_the_causal_fix() -> None:
    for causal in (False, True):
        ours = FAMILY.token_positions(2, (3, 2, 4), 24.0, causal=causal)
        theirs = comfy_pixel_coords(3, 2, 4, 24.0, causal_fix=causal).expand(2, -1, -1)
        assert ours.shape == (2, 3, 24)
        assert torch.allclose(ours, theirs, rtol=0, atol=1e-7), causal
    causal = FAMILY.token_positions(1, (3, 1, 1), 24.0, causal=True)[0, 0]
    plain = FAMILY.token_positions(1, (3, 1, 1), 24.0)[0, 0]
    # latent frame k at pixel frame max(0, 8k - 7): 0, 1, 9 (causal) instead of 0, 8, 16
    assert torch.allclose(causal * 24, torch.tensor([0.0, 1.0, 9.0]), atol=1e-5)
    assert torch.allclose(plain * 24, torch.tensor([0.0, 8.0, 16.0]), atol=1e-5)


def test_diffusers_rope_of_our_causal_coords_equals_comfyuis_position_embedding(tiny_transformer) -> None:
    f, h, w, fps = 3, 2, 3, 24.0
    x = torch.zeros(1, f * h * w, 32)
    cos, sin = tiny_transformer.rope(x, video_coords=FAMILY.token_positions(1, (f, h, w), fps, causal=True))
    want_cos, want_sin = comfy_freqs_cis(comfy_pixel_coords(f, h, w, fps, causal_fix=True), dim=32)
    assert torch.allclose(cos, want_cos, atol=1e-6) and torch.allclose(sin, want_sin, atol=1e-6)
    # and the non-causal grid diffusers builds by itself is ComfyUI's without the fix (what training used so far)
    cos0, _ = tiny_transformer.rope(x, f, h, w, (8 / fps, 32, 32))
    assert torch.allclose(cos0, comfy_freqs_cis(comfy_pixel_coords(f, h, w, fps, causal_fix=False), dim=32)[0], atol=1e-6)
    assert not torch.allclose(cos, cos0, atol=1e-3)


def test_predict_off_is_the_old_call_and_on_feeds_comfyuis_coords(tiny_transformer) -> None:
    spy = Spy(tiny_transformer)
    with torch.no_grad():
        off = FAMILY.predict(spy, _inputs(causal=False), device="cpu", dtype=torch.float32)
        on = FAMILY.predict(spy, _inputs(causal=True), device="cpu", dtype=torch.float32)
        inp = _inputs()
        plain = tiny_transformer(
            hidden_states=inp.tokens, encoder_hidden_states=inp.prompt_embeds, timestep=inp.timesteps,
            encoder_attention_mask=inp.prompt_attention_mask.float(), num_frames=3, height=2, width=2,
            rope_interpolation_scale=(8 / 24.0, 32, 32), return_dict=False,
        )[0]
        by_hand = tiny_transformer(
            hidden_states=inp.tokens, encoder_hidden_states=inp.prompt_embeds, timestep=inp.timesteps,
            encoder_attention_mask=inp.prompt_attention_mask.float(), num_frames=3, height=2, width=2,
            video_coords=comfy_pixel_coords(3, 2, 2, 24.0, causal_fix=True).expand(2, -1, -1), return_dict=False,
        )[0]
    assert "video_coords" not in spy.calls[0]  # off: exactly the call made before the flag existed
    assert torch.equal(off, plain)
    assert torch.allclose(spy.calls[1]["video_coords"], comfy_pixel_coords(3, 2, 2, 24.0, True).expand(2, -1, -1), atol=1e-7)
    assert torch.allclose(on, by_hand, atol=1e-6)
    assert not torch.allclose(on, off, atol=1e-4)  # the offset changes what the model computes


@pytest.mark.parametrize("mode", ["none", "reference_video"])
def test_strategies_pass_the_checkpoints_flag_to_the_model(tiny_transformer, mode: str) -> None:
    from ltx_train_lib.config import ReferenceVideoConditioning, StandardConditioning

    conditioning = (ReferenceVideoConditioning(mode="reference_video") if mode == "reference_video"
                    else StandardConditioning(first_frame_conditioning_p=0.0))
    inp = _inputs(b=2)
    batch = {
        "latents": inp.tokens, "prompt_embeds": inp.prompt_embeds, "prompt_attention_mask": inp.prompt_attention_mask,
        "num_frames": 3, "height": 2, "width": 2, "fps": 30.0, "ref_latents": inp.tokens.flip(1),
    }
    coords = {}
    for causal in (False, True):
        strategy = build_strategy(conditioning, FlowMatchingConfig(), FAMILY, components=_components(causal))
        assert strategy.causal_temporal_positioning is causal
        spy = Spy(tiny_transformer)
        strategy.loss(spy, batch, torch.Generator().manual_seed(1), device=torch.device("cpu"), model_dtype=torch.float32)
        coords[causal] = spy.calls[0].get("video_coords")
    grid = comfy_pixel_coords(3, 2, 2, 30.0, causal_fix=True).expand(2, -1, -1)
    if mode == "none":
        assert coords[False] is None
        assert torch.allclose(coords[True], grid, atol=1e-7)
    else:  # the reference copy of the grid sits on the target's positions, offset like the target
        assert torch.allclose(coords[True], torch.cat([grid, grid], dim=2), atol=1e-7)
        plain = comfy_pixel_coords(3, 2, 2, 30.0, causal_fix=False).expand(2, -1, -1)
        assert torch.allclose(coords[False], torch.cat([plain, plain], dim=2), atol=1e-7)


# ------------------------------------------------------------------------------ 1. reading the flag like ComfyUI


def test_causal_flag_is_read_from_the_config_metadata_exactly_where_comfyui_reads_it() -> None:
    read = loading.causal_flag_from_metadata
    on = {"config": json.dumps({"transformer": {"causal_temporal_positioning": True}, "vae": {}})}
    assert read(on, "x") is True
    assert read({"config": json.dumps({"transformer": {"causal_temporal_positioning": False}})}, "x") is False
    assert read({"config": json.dumps({"transformer": {"num_layers": 28}})}, "x") is None  # -> ComfyUI's default
    assert read({"config": json.dumps({"vae": {}})}, "x") is None
    assert read({"transformer_config": json.dumps({"causal_temporal_positioning": True})}, "x") is None  # not read
    assert read({"causal_temporal_positioning": "true"}, "x") is None  # top level: ComfyUI does not look there
    assert read(None, "x") is None
    for bad in ("not json", json.dumps([1]), json.dumps({"transformer": "text"})):
        with pytest.raises(ModelLoadError, match="'f.safetensors'.*config"):
            read({"config": bad}, "f.safetensors")


def test_single_files_folders_versions_and_repos_get_comfyuis_flag(tmp_path: Path, tiny_transformer, tiny_model_dir) -> None:
    causal_file = _export_tiny(tiny_transformer, tmp_path / "causal.safetensors", causal=True)
    plain_file = _export_tiny(tiny_transformer, tmp_path / "plain.safetensors", causal=None)
    loaded = load_components(str(causal_file), ("transformer",))
    assert loaded.causal_temporal_positioning is True and loaded.extras[CAUSAL_TEMPORAL_POSITIONING] is True
    assert load_components(str(plain_file), ("transformer",)).causal_temporal_positioning is False
    assert load_components("tiny", ("transformer",)).causal_temporal_positioning is False  # diffusers config: no key
    assert load_components("tiny", ("vae",)).extras == {}  # nothing claimed without the transformer

    folder = tmp_path / "pipeline"
    (folder / "transformer").mkdir(parents=True)
    config = json.loads((tiny_model_dir / "transformer" / "config.json").read_text())
    (folder / "transformer" / "config.json").write_text(json.dumps({**config, "causal_temporal_positioning": True}))
    assert loading.causal_temporal_positioning(resolve_source(str(folder)))[0] is True
    assert loading.causal_temporal_positioning(resolve_source(str(tiny_model_dir)))[0] is False

    # named versions, offline: what each release's single file states (0.9.5 is when ComfyUI added the flag)
    assert loading.causal_temporal_positioning(resolve_source("LTXV_2B_0.9.1"))[0] is False
    for name in ("LTXV_2B_0.9.5", "LTXV_13B_097_DEV", "LTXV_2B_0.9.8_DISTILLED"):
        assert loading.causal_temporal_positioning(resolve_source(name))[0] is True, name
    assert loading.causal_temporal_positioning(resolve_source("Lightricks/LTX-Video-0.9.5"))[0] is True
    assert loading.causal_temporal_positioning(resolve_source("someone/ltx-finetune"))[0] is False


# ------------------------------------------------------------------------------------- 2. one fps per batch


def test_batches_never_mix_fps_and_resume_exactly(tmp_path: Path) -> None:
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 8 + [(1, 2, 3)] * 2)
    _set_fps(root, {i: 30.0 for i in (1, 3, 5, 7)})  # one shape bucket, two frame rates
    ds = PrecomputedDataset(root)
    assert sorted(len(v) for v in ds.buckets().values()) == [2, 8]  # shape buckets are as before
    assert sorted((k, len(v)) for k, v in ds.batch_groups().items()) == [
        (((1, 2, 3), 24.0), 2), (((2, 2, 2), 24.0), 4), (((2, 2, 2), 30.0), 4)
    ]
    assert ds.fps_counts() == {24.0: 4, 30.0: 4}  # images (one latent frame) have no time to count

    plan = BucketBatchPlan(ds, batch_size=2, seed=11)
    seq = [plan.next_batch() for _ in range(10)]  # two epochs of five batches
    for batch in seq:
        assert len({(ds.samples[i].shape, ds.samples[i].fps) for i in batch}) == 1
        collated = collate([ds[i] for i in batch])
        assert collated["fps"] == ds.samples[batch[0]].fps
    assert sorted(i for b in seq[:5] for i in b) == list(range(10))
    partway = BucketBatchPlan(ds, batch_size=2, seed=11)
    for _ in range(7):
        partway.next_batch()
    state = partway.state_dict()
    assert state == {"epoch": 1, "position": 2}
    resumed = BucketBatchPlan(ds, batch_size=2, seed=11)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(3)] == seq[7:]

    with pytest.raises(DatasetError, match=r"different frame rates \(24, 30 fps\)"):
        collate([ds[0], ds[1]])


def test_one_fps_per_shape_keeps_the_old_batch_order(precomputed_dataset: Path) -> None:
    """Old checkpoints resume onto the same batches: with one fps per shape the groups are the shape buckets."""
    import random

    ds = PrecomputedDataset(precomputed_dataset)
    plan = BucketBatchPlan(ds, batch_size=2, seed=5)
    for epoch in (0, 1, 2):
        rng = random.Random(f"5-{epoch}")  # the plan's algorithm over shape buckets alone
        old: list[list[int]] = []
        for key in sorted(ds.buckets()):
            idx = list(ds.buckets()[key])
            rng.shuffle(idx)
            old += [idx[i : i + 2] for i in range(0, len(idx) - 1, 2)]
        rng.shuffle(old)
        assert plan.batches_for_epoch(epoch) == old


# --------------------------------------------------------------- 3. what reaches ComfyUI: export, fps, card, workflow


def test_full_model_export_carries_the_config_comfyuis_detection_reads(tiny_transformer, tmp_path: Path) -> None:
    from ltx_train_lib import export

    comfy_sd = {k.removeprefix("model.diffusion_model."): v
                for k, v in export.full_diffusers_to_comfy(tiny_transformer.state_dict()).items()}
    for causal in (False, True):
        meta = FAMILY.full_model_metadata(tiny_transformer, _components(causal))
        assert json.loads(meta["transformer_config"])["num_layers"] == 2  # our loader's key stays
        assert set(json.loads(meta["config"])) == {"transformer"}
        dit = comfy_detect_ltxv(comfy_sd, meta)
        assert dit["causal_temporal_positioning"] is causal
        assert (dit["num_attention_heads"], dit["attention_head_dim"], dit["in_channels"], dit["caption_channels"]) == (4, 8, 8, 32)
        for key, shape in comfy_expected_shapes(dit).items():
            assert tuple(comfy_sd[key].shape) == shape, key
        assert dit["positional_embedding_max_pos"] == [20, 2048, 2048] and dit["positional_embedding_theta"] == 10000.0
    # without it ComfyUI assumes the 2B/13B input sizes (and 32 heads): the tiny file does not build
    guessed = comfy_detect_ltxv(comfy_sd, None)
    assert guessed["num_attention_heads"] == 32 and guessed["in_channels"] == 128
    assert tuple(comfy_sd["patchify_proj.weight"].shape) != comfy_expected_shapes(guessed)["patchify_proj.weight"]

    # the ComfyUI-keyed conversion (what Load Diffusion Model reads) keeps the header
    src = _export_tiny(tiny_transformer, tmp_path / "model_weights.safetensors", causal=True)
    with safe_open(str(export.convert_file(src, to="comfy")), "pt") as fh:
        assert json.loads(fh.metadata()["config"])["transformer"]["causal_temporal_positioning"] is True


def test_training_from_a_causal_checkpoint_on_mixed_fps_reaches_the_outputs(tmp_path: Path, tiny_transformer,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The real trainer: the flag of the loaded file reaches the loss and the exported header; the header names the
    most common fps of the clips and the mix; the export loads back with the same flag."""
    from ltx_train_lib.training.trainer import Trainer

    source = _export_tiny(tiny_transformer, tmp_path / "base.safetensors", causal=True)
    root = make_precomputed(tmp_path / "ds", [(2, 2, 2)] * 5)
    _set_fps(root, {3: 30.0, 4: 30.0})
    cfg = tiny_config_dict(root, tmp_path / "out", model__model_source=str(source), model__training_mode="full",
                           lora=None, optimization__steps=2, checkpoints__interval=None)
    seen: list[tuple[float, bool]] = []
    predict = FAMILY.predict

    def spy(model, inputs, **kw):
        seen.append((inputs.fps, inputs.causal_temporal_positioning))
        return predict(model, inputs, **kw)

    monkeypatch.setattr(FAMILY, "predict", spy)  # the registered family instance the trainer asks
    trainer = Trainer(config_from_dict(cfg))
    assert trainer.family is FAMILY
    assert trainer.train().status == "done"
    assert trainer.strategy.causal_temporal_positioning is True
    assert {c for _, c in seen} == {True} and {f for f, _ in seen} <= {24.0, 30.0} and len(seen) == 2

    weights = tmp_path / "out" / "model_weights.safetensors"
    with safe_open(str(weights), "pt") as fh:
        meta = fh.metadata()
    assert meta["frame_rate"] == "24" and json.loads(meta["frame_rates"]) == {"24": 3, "30": 2}
    assert json.loads(meta["config"])["transformer"]["causal_temporal_positioning"] is True
    assert load_components(str(weights), ("transformer",)).causal_temporal_positioning is True


def test_lora_header_and_card_tell_the_user_the_fps(tmp_path: Path) -> None:
    from ltx_train_lib import hub

    cfg = config_from_dict(tiny_config_dict(tmp_path, tmp_path / "out"))
    one = weights_metadata(cfg, "tiny", 10, FAMILY, {24.0: 5})
    assert one["frame_rate"] == "24" and "frame_rates" not in one
    mixed = weights_metadata(cfg, "tiny", 10, FAMILY, {30.0: 2, 23.976023976: 7})
    assert mixed["frame_rate"] == "23.976" and json.loads(mixed["frame_rates"]) == {"23.976": 7, "30": 2}
    assert "frame_rate" not in weights_metadata(cfg, "tiny", 10, FAMILY, {})  # images only: no time axis

    def card(meta: dict, kind: str = "lora") -> str:
        files = ["lora_weights.safetensors", "lora_weights_comfy.safetensors"] if kind == "lora" else [
            "model_weights.safetensors", "model_weights_comfy.safetensors"]
        return hub.render_model_card(repo_id="me/x", kind=kind, files=files, config={}, weights_metadata=meta,
                                     samples=[], trigger_word=None)

    text = card(mixed)
    assert "Sample at 23.976 fps: set **LTXVConditioning**'s `frame_rate` to 23.976" in text
    assert "7 at 23.976 fps, 2 at 30 fps" in text and "frame_rate=23.976" in text
    assert "set **LTXVConditioning**'s `frame_rate` to 24" in card({**one, "model_family": "ltxv"}, kind="full")
    assert "does not record the training fps" in card({})


def test_generation_workflow_samples_at_the_sample_clips_fps() -> None:
    from collections import Counter

    from ltx_train_lib.media import probe_media

    rates = Counter(probe_media(p).fps for p in sorted((REPO / "samples" / "clips").glob("*.mp4")))
    fps = rates.most_common(1)[0][0]
    workflow = json.loads((REPO / "workflows" / "LTX Trainer, train then generate (LTXV 2B, GPU).json").read_text())
    values = {n["type"]: n["widgets_values"] for n in workflow["nodes"]}
    assert values["LTXVConditioning"] == [fps]  # ComfyUI's only widget: frame_rate
    assert values["SaveAnimatedWEBP"][1] == fps  # filename_prefix, fps, ...
    assert fps != 25.0  # the clips are not at ComfyUI's default, so this check can fail
