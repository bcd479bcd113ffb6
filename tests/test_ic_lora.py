"""IC-LoRA end to end on the tiny model: Canny reference videos, reference latents in preprocessing, the
reference-video training strategy, side-by-side validation, and decode_latents."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ltx_train_lib.captions_io import CaptionEntry, read_captions, write_captions
from ltx_train_lib.config import ValidationConfig, config_from_dict
from ltx_train_lib.errors import ConfigError, DatasetError
from ltx_train_lib.media import probe_media, read_video_frames
from ltx_train_lib.models.ltxv.transformer import video_coords
from ltx_train_lib.synthetic import make_image, make_scene_video
from ltx_train_lib.training.sigmas import sample_sigmas
from ltx_train_lib.training.strategy import ReferenceVideoStrategy, reference_video_loss
from ltx_train_lib.training.trainer import Trainer
from tests.conftest import make_precomputed, tiny_config_dict

REPO = Path(__file__).resolve().parents[1]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows))
    return path


def make_ic_precomputed(root: Path, shapes: list[tuple[int, int, int]], seed: int = 0) -> Path:
    """``make_precomputed`` plus ``reference_latents/`` of the same shapes (different values), as preprocessing
    with --reference-column writes them."""
    make_precomputed(root, shapes, seed=seed)
    g = torch.Generator().manual_seed(seed + 1000)
    refs = root / ".precomputed" / "reference_latents"
    refs.mkdir(parents=True, exist_ok=True)
    for i, (f, h, w) in enumerate(shapes):
        latents = torch.randn(f * h * w, 8, generator=g).to(torch.bfloat16)
        torch.save(
            {"latents": latents, "num_frames": f, "height": h, "width": w, "fps": 24.0},
            refs / f"clip_{i:03d}.mp4.pt",
        )
    return root


# ------------------------------------------------------------------------------------------- compute_condition


def test_compute_condition_writes_canny_references_and_records_them(tmp_path: Path) -> None:
    import cv2

    from ltx_train_lib.cli.compute_condition import main

    make_scene_video(tmp_path / "clips" / "a.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=0)
    make_scene_video(tmp_path / "clips" / "b.mp4", cuts=(), num_frames=20, fps=25, size=(96, 64), seed=1)
    make_image(tmp_path / "clips" / "still.png", size=(80, 64), seed=2)
    rows = [
        {"caption": "a red square", "media_path": "clips/a.mp4", "note": "kept as is"},
        {"caption": "blue stripes", "media_path": "clips/b.mp4"},
        {"caption": "a still", "media_path": "clips/still.png"},
        {"caption": "gone", "media_path": "clips/ghost.mp4"},
    ]
    captions = write_json(tmp_path / "captions.json", rows)

    assert main([str(tmp_path), "--batch-size", "5"]) == 1  # the folder resolves to its captions.json
    data = json.loads(captions.read_text())
    assert [r.get("reference_path") for r in data] == [
        "clips/a_reference.mp4",
        "clips/b_reference.mp4",
        "clips/still_reference.png",
        None,  # its media is missing: reported, the entry left as it was
    ]
    assert data[0]["note"] == "kept as is" and data[3] == rows[3]
    for name, fps in (("a", 24), ("b", 25)):
        src, src_fps = read_video_frames(tmp_path / "clips" / f"{name}.mp4")
        ref, ref_fps = read_video_frames(tmp_path / "clips" / f"{name}_reference.mp4")
        assert ref.shape == src.shape and round(ref_fps) == round(src_fps) == fps
        # The edges of each frame, through H.264: nearly binary, equal in R, G and B, and where Canny puts them.
        want = np.stack([cv2.Canny(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), 100, 200) for f in src]) > 127
        got = ref.astype(int)
        assert want.any() and (~want).any()
        assert np.mean((got[..., 0] > 127) == want) > 0.97
        assert np.abs(got[..., 0] - got[..., 2]).mean() < 4
    still = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "clips" / "still_reference.png"))
    assert still.shape == (64, 80, 3) and set(np.unique(still)) <= {0, 255}

    # Re-run: existing references are kept; --override recomputes them.
    stamp = (tmp_path / "clips" / "a_reference.mp4").stat().st_mtime_ns
    (tmp_path / "clips" / "ghost.mp4").write_bytes((tmp_path / "clips" / "a.mp4").read_bytes())
    assert main([str(captions)]) == 0
    assert (tmp_path / "clips" / "a_reference.mp4").stat().st_mtime_ns == stamp
    assert json.loads(captions.read_text())[3]["reference_path"] == "clips/ghost_reference.mp4"
    assert main([str(tmp_path / "clips"), "-o", str(captions), "--override"]) == 0
    assert (tmp_path / "clips" / "a_reference.mp4").stat().st_mtime_ns != stamp
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    # A caption format that cannot hold the column is refused, not silently stripped.
    (tmp_path / "d_captions.txt").write_text("x\n")
    (tmp_path / "d_paths.txt").write_text("clips/a.mp4\n")
    assert main([str(tmp_path / "d.txt")]) == 2


@pytest.mark.parametrize("fmt", [".json", ".jsonl", ".csv"])
def test_extra_columns_round_trip(tmp_path: Path, fmt: str) -> None:
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"")
    entries = [
        CaptionEntry("first", tmp_path / "a.mp4", {"reference_path": "a_reference.mp4", "score": "3"}),
        CaptionEntry("second", tmp_path / "b.mp4"),
    ]
    write_captions(tmp_path / f"c{fmt}", entries)
    back = read_captions(tmp_path / f"c{fmt}")
    assert back[0].extra == {"reference_path": "a_reference.mp4", "score": "3"}
    # CSV has a cell for every column; the structured formats leave absent keys absent.
    assert back[1].extra == ({"reference_path": "", "score": ""} if fmt == ".csv" else {})
    assert [(e.caption, e.media_path) for e in back] == [(e.caption, e.media_path) for e in entries]


# ------------------------------------------------------------------------------------------------ preprocessing


def test_preprocess_reference_latents_incremental_and_reported(tmp_path: Path, tiny_model_dir: Path) -> None:
    from ltx_train_lib.cli.preprocess import main
    from ltx_train_lib.precompute import preprocess_dataset

    make_scene_video(tmp_path / "a.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=0)
    make_scene_video(tmp_path / "a_ref.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=10)
    make_scene_video(tmp_path / "b.mp4", cuts=(), num_frames=20, fps=25, size=(96, 64), seed=1)
    make_scene_video(tmp_path / "b_ref.mp4", cuts=(), num_frames=20, fps=25, size=(96, 64), seed=11)
    make_scene_video(tmp_path / "c.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=2)
    make_scene_video(tmp_path / "d.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=3)
    make_scene_video(tmp_path / "e.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=4)
    make_scene_video(tmp_path / "e_ref.mp4", cuts=(), num_frames=5, fps=24, size=(64, 64), seed=5)
    write_json(
        tmp_path / "captions.json",
        [
            {"caption": "a red square", "media_path": "a.mp4", "reference_path": "a_ref.mp4"},
            {"caption": "blue stripes", "media_path": "b.mp4", "reference_path": "b_ref.mp4"},
            {"caption": "reference missing", "media_path": "c.mp4", "reference_path": "nowhere.mp4"},
            {"caption": "no reference given", "media_path": "d.mp4"},
            {"caption": "reference too short", "media_path": "e.mp4", "reference_path": "e_ref.mp4"},
        ],
    )
    out = tmp_path / ".precomputed"
    buckets = "64x64x9;96x64x17"
    args = [str(tmp_path), "--resolution-buckets", buckets, "--model-source", "tiny", "--device", "cpu"]
    assert main([*args, "--reference-column", "reference_path", "--decode-videos"]) == 1

    for name, shape in (("a", (2, 2, 2)), ("b", (3, 2, 3))):
        lat, ref = load(out / "latents" / f"{name}.pt"), load(out / "reference_latents" / f"{name}.pt")
        assert set(ref) == set(lat) == {"latents", "num_frames", "height", "width", "fps"}
        assert (ref["num_frames"], ref["height"], ref["width"]) == (lat["num_frames"], lat["height"], lat["width"])
        assert (lat["num_frames"], lat["height"], lat["width"]) == shape
        assert ref["latents"].shape == lat["latents"].shape and ref["latents"].dtype == torch.bfloat16
        assert not torch.equal(ref["latents"], lat["latents"])
        decoded = probe_media(out / "decoded_reference_videos" / f"{name}.mp4")
        assert (decoded.width, decoded.height, decoded.num_frames) == (
            shape[2] * 32,
            shape[1] * 32,
            (shape[0] - 1) * 8 + 1,
        )
    for name in ("c", "d", "e"):  # skipped: nothing cached for them
        assert not (out / "latents" / f"{name}.pt").exists() and not (out / "conditions" / f"{name}.pt").exists()
    assert sorted(p.name for p in (out / "reference_latents").glob("*.pt")) == ["a.pt", "b.pt"]

    def run(**kw):
        return preprocess_dataset(tmp_path, buckets, model_source="tiny", device="cpu", **kw)

    again = run(reference_column="reference_path")
    reasons = dict(again.skipped)
    assert "nowhere.mp4 does not exist" in reasons["c.mp4"] and "compute_condition.py" in reasons["c.mp4"]
    assert "no reference video in column 'reference_path'" in reasons["d.mp4"]
    assert "has 5 frames, fewer than the 9" in reasons["e.mp4"]
    assert sorted(again.reused) == ["a.mp4", "b.mp4"] and again.references_computed == again.latents_computed == []

    # New bytes in one reference: that sample's reference and latents are re-encoded, nothing else.
    a_before = (out / "reference_latents" / "a.pt").stat().st_ino
    old_b = load(out / "reference_latents" / "b.pt")["latents"]
    make_scene_video(tmp_path / "b_ref.mp4", cuts=(), num_frames=20, fps=25, size=(96, 64), seed=12)
    changed = run(reference_column="reference_path")
    assert changed.references_computed == changed.latents_computed == ["b.mp4"] and changed.conditions_computed == []
    assert not torch.equal(old_b, load(out / "reference_latents" / "b.pt")["latents"])
    assert (out / "reference_latents" / "a.pt").stat().st_ino == a_before

    # Without the reference column, a and b keep their latents but lose the reference latents the run can no longer
    # vouch for; c, d and e are ordinary samples now.
    plain = run()
    assert sorted(plain.reused) == ["a.mp4", "b.mp4"] and sorted(plain.latents_computed) == ["c.mp4", "d.mp4", "e.mp4"]
    assert not [
        p for d in ("reference_latents", "decoded_reference_videos") for p in (out / d).rglob("*") if p.is_file()
    ]

    # A caption file without the column at all is an argument error, before any model loads.
    write_json(tmp_path / "plain.json", [{"caption": "x", "media_path": "a.mp4"}])
    assert main([str(tmp_path / "plain.json"), *args[1:], "--reference-column", "reference_path"]) == 2


def test_reference_gets_the_targets_frames_and_crop(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    """Random frame selection and random crop: a reference identical to its target gets the identical pixels."""
    from ltx_train_lib import precompute
    from ltx_train_lib.precompute import model_io

    make_scene_video(tmp_path / "clip.mp4", cuts=(), num_frames=30, fps=24, size=(128, 64), seed=3)
    shutil.copy(tmp_path / "clip.mp4", tmp_path / "clip_reference.mp4")
    write_json(
        tmp_path / "captions.json",
        [{"caption": "moving", "media_path": "clip.mp4", "reference_path": "clip_reference.mp4"}],
    )
    seen: list[torch.Tensor] = []
    real = model_io.encode_latents

    def spy(vae, pixels, generators, **kwargs):
        seen.append(pixels.clone())
        return real(vae, pixels, generators, **kwargs)

    monkeypatch.setattr(model_io, "encode_latents", spy)  # the run reaches model code through model_io
    result = precompute.preprocess_dataset(
        tmp_path,
        "64x64x9",
        model_source="tiny",
        device="cpu",
        reference_column="reference_path",
        frame_selection="random",
        reshape_mode="random",
    )
    assert result.ok and len(seen) == 2  # the reference batch, then the target batch
    ref_pixels, target_pixels = seen
    assert ref_pixels.shape == target_pixels.shape == (1, 3, 9, 64, 64)
    assert torch.equal(ref_pixels, target_pixels)
    # ...and the selection really was random (not the first frames, not the centre crop).
    first, _ = read_video_frames(tmp_path / "clip.mp4", max_frames=9)
    centre = precompute.frames_to_pixels(first[:, :, 32:96])
    assert not torch.equal(target_pixels[0], centre)


# ------------------------------------------------------------------------------------------------------ strategy


class _Spy(torch.nn.Module):
    """Calls the transformer, remembers its inputs and optionally edits its output."""

    def __init__(self, model: torch.nn.Module, edit=None) -> None:
        super().__init__()
        self.model, self.edit, self.kwargs = model, edit, {}

    def forward(self, **kwargs):
        self.kwargs = kwargs
        out = self.model(**kwargs)[0]
        return (self.edit(out.clone()) if self.edit else out,)


@pytest.fixture(scope="module")
def tiny_transformer(tiny_model_dir: Path):
    from ltx_train_lib.models.loader import load_components

    return load_components("tiny", ("transformer",)).transformer.eval()


def _batch(f: int = 2, h: int = 2, w: int = 2, b: int = 2) -> dict:
    g = torch.Generator().manual_seed(5)
    n = f * h * w
    return {
        "latents": torch.randn(b, n, 8, generator=g),
        "ref_latents": torch.randn(b, n, 8, generator=g),
        "prompt_embeds": torch.randn(b, 256, 32, generator=g),
        "prompt_attention_mask": torch.arange(256)[None].expand(b, -1) < 6,
        "num_frames": f,
        "height": h,
        "width": w,
        "fps": 24.0,
        "indices": list(range(b)),
    }


def test_reference_loss_ignores_reference_tokens(tiny_transformer) -> None:
    batch = _batch()
    n, hw = 8, 4

    def loss(edit=None, p=0.0):
        spy = _Spy(tiny_transformer, edit)
        out = reference_video_loss(
            spy,
            batch,
            torch.Generator().manual_seed(11),
            sampling_mode="shifted_logit_normal",
            sampling_params={},
            first_frame_p=p,
            device=torch.device("cpu"),
            model_dtype=torch.float32,
        )
        return out, spy.kwargs

    base, kw = loss()
    assert torch.isfinite(base.loss)

    def shift(sl: slice, by: float):
        def edit(out):
            out[:, sl] += by
            return out

        return edit

    # Whatever the model says on the reference positions does not count...
    assert torch.equal(loss(shift(slice(0, n), 1e3))[0].loss, base.loss)
    # ...while the target positions do.
    assert not torch.allclose(loss(shift(slice(n, 2 * n), 0.5))[0].loss, base.loss)

    # The sequence: clean reference at timestep 0, then the target noised at sigma drawn for the target's tokens.
    g = torch.Generator().manual_seed(11)
    sigmas = sample_sigmas("shifted_logit_normal", {}, 2, n, g)
    noise = torch.randn(batch["latents"].shape, generator=g)
    assert torch.equal(base.sigmas, sigmas)
    assert not torch.allclose(
        sample_sigmas("shifted_logit_normal", {}, 2, 2 * n, torch.Generator().manual_seed(11)), sigmas
    )
    s = sigmas.view(2, 1, 1)
    assert kw["hidden_states"].shape == (2, 2 * n, 8)
    assert torch.equal(kw["hidden_states"][:, :n], batch["ref_latents"])
    assert torch.allclose(kw["hidden_states"][:, n:], (1 - s) * batch["latents"] + s * noise)
    assert torch.equal(kw["timestep"][:, :n], torch.zeros(2, n))
    assert torch.allclose(kw["timestep"][:, n:], sigmas[:, None].expand(2, n) * 1000)
    coords = kw["video_coords"]
    assert coords.shape == (2, 3, 2 * n) and torch.equal(coords[..., :n], coords[..., n:])
    assert torch.equal(coords[..., n:], video_coords(2, 2, 2, 2, 24.0))

    # First-frame conditioning (p=1): the target's first latent frame is clean, at timestep 0 and out of the loss.
    ff, kw = loss(p=1.0)
    assert ff.conditioned.all()
    assert torch.equal(kw["timestep"][:, n : n + hw], torch.zeros(2, hw))
    assert torch.equal(kw["hidden_states"][:, n : n + hw], batch["latents"][:, :hw])
    assert torch.equal(loss(shift(slice(n, n + hw), 1e3), p=1.0)[0].loss, ff.loss)
    assert not torch.allclose(loss(shift(slice(n + hw, 2 * n), 0.5), p=1.0)[0].loss, ff.loss)


def test_video_coords_are_the_positions_diffusers_gives_the_target(tiny_transformer) -> None:
    """With explicit coordinates the rotary embedding equals diffusers' own grid (so the target is positioned as in
    standard training) and the reference copy of the grid gets identical positions."""
    f, h, w, fps = 3, 2, 4, 25.0
    rope = tiny_transformer.rope
    x = torch.zeros(1, f * h * w, 32)
    default = rope(x, f, h, w, (8 / fps, 32, 32))
    explicit = rope(x, video_coords=video_coords(1, f, h, w, fps))
    for a, b in zip(default, explicit, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    coords = video_coords(1, f, h, w, fps)
    doubled = rope(torch.zeros(1, 2 * f * h * w, 32), video_coords=torch.cat([coords, coords], dim=2))
    for part in doubled:
        assert torch.equal(part[:, : f * h * w], part[:, f * h * w :])
    assert not torch.allclose(default[0][:, 0], default[0][:, -1])  # positions do differ along the grid


# ------------------------------------------------------------------------------------------------------- trainer


def _ic_config(root: Path, out: Path, ref_video: Path, **overrides) -> dict:
    return tiny_config_dict(
        root,
        out,
        conditioning={"mode": "reference_video", "first_frame_conditioning_p": 0.5},
        validation={
            "prompts": ["edges become a video"],
            "reference_videos": [str(ref_video)],
            "interval": 2,
            "video_dims": [64, 32, 9],
            "inference_steps": 2,
            "frame_rate": 12,
            "skip_initial_validation": True,
        },
        **overrides,
    )


def test_reference_video_training_run_and_side_by_side_validation(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch
) -> None:
    from ltx_train_lib.training.validation import load_reference_video

    root = make_ic_precomputed(tmp_path / "ds", [(2, 1, 2)] * 2 + [(1, 2, 2)] * 2)
    ref_video = make_scene_video(tmp_path / "ref.mp4", cuts=(), num_frames=12, fps=12, size=(80, 40), seed=4)
    calls: list[dict] = []
    real = ReferenceVideoStrategy.loss

    def counting(self, model, batch, *a, **kw):
        calls.append(batch)
        return real(self, model, batch, *a, **kw)

    monkeypatch.setattr(ReferenceVideoStrategy, "loss", counting)
    out = tmp_path / "out"
    result = Trainer(config_from_dict(_ic_config(root, out, ref_video, optimization__steps=2))).train()

    assert result.status == "done" and len(result.losses) == 2 and all(np.isfinite(result.losses))
    assert len(calls) == 2 and all("ref_latents" in b for b in calls)
    assert (out / "lora_weights.safetensors").is_file() and (out / "lora_weights_comfy.safetensors").is_file()
    sample = out / "validation_samples" / "step_000002_p0_v0.mp4"
    assert sorted(p.name for p in sample.parent.glob("*.mp4")) == [sample.name]
    frames, fps = read_video_frames(sample)
    assert frames.shape == (9, 32, 128, 3) and round(fps) == 12  # reference | generated
    want = load_reference_video(ref_video, 64, 32, 9).astype(int)
    left, right = (np.abs(frames[:, :, sl].astype(int) - want).mean() for sl in (slice(0, 64), slice(64, 128)))
    # H.264 at 64 px blurs a little, yet the left half is clearly the reference.
    assert left < 12 and left < right / 3, (left, right)


@pytest.mark.parametrize("problem", ["one_missing", "no_folder", "wrong_shape"])
def test_missing_or_mismatched_reference_latents_are_named(tmp_path: Path, problem: str) -> None:
    root = make_ic_precomputed(tmp_path / "ds", [(2, 2, 2)] * 4)
    refs = root / ".precomputed" / "reference_latents"
    if problem == "one_missing":
        (refs / "clip_001.mp4.pt").unlink()
        pattern = r"1 of 4 sample\(s\) have no reference latents in '.*reference_latents': clip_001\.mp4\.pt"
    elif problem == "no_folder":
        shutil.rmtree(refs)
        pattern = r"reference_latents' does not exist; run preprocess_dataset.py with --reference-column"
    else:
        torch.save(
            {"latents": torch.zeros(2, 8), "num_frames": 1, "height": 1, "width": 2, "fps": 24.0},
            refs / "clip_002.mp4.pt",
        )
        pattern = r"clip_002\.mp4\.pt': reference latents of shape \(1, 1, 2\) .* its target has \(2, 2, 2\)"
    cfg = _ic_config(root, tmp_path / "out", tmp_path / "unused.mp4")
    cfg["validation"]["interval"] = None
    with pytest.raises(DatasetError, match=pattern):
        Trainer(config_from_dict(cfg)).train()
    assert not (tmp_path / "out").exists()


def test_ic_validation_depends_on_the_reference_and_checks_its_length(tmp_path: Path, tiny_model_dir: Path) -> None:
    from ltx_train_lib.models.loader import load_components
    from ltx_train_lib.training.validation import check_validation_inputs, generate_validation_videos

    refs = [
        make_scene_video(tmp_path / f"r{i}.mp4", cuts=(), num_frames=9, fps=24, size=(64, 32), seed=i) for i in (0, 1)
    ]
    image = make_image(tmp_path / "first.png", size=(64, 32), seed=3)
    cfg = ValidationConfig(
        prompts=["same prompt", "same prompt"],
        reference_videos=[str(r) for r in refs],
        images=[str(image), str(image)],
        video_dims=(64, 32, 9),
        inference_steps=2,
    )
    check_validation_inputs(cfg, reference_mode=True)
    comps = load_components("tiny", ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"))
    paths = generate_validation_videos(
        comps, comps.transformer.eval(), cfg, 3, tmp_path / "out", "cpu", reference_mode=True
    )
    assert [p.name for p in paths] == ["step_000003_p0_v0.mp4", "step_000003_p1_v0.mp4"]
    a, b = (read_video_frames(p)[0].astype(int) for p in paths)
    assert a.shape == b.shape == (9, 32, 128, 3)
    # Same prompt, seed and first frame: only the reference differs, and so does the generated half.
    assert np.abs(a[:, :, 64:] - b[:, :, 64:]).mean() > 1

    short = make_scene_video(tmp_path / "short.mp4", cuts=(), num_frames=6, fps=24, size=(64, 32), seed=5)
    with pytest.raises(
        ConfigError, match=r"reference_videos\[1\] .* has 6 frames but validation.video_dims asks for 9.*at most 1"
    ):
        check_validation_inputs(
            cfg.model_copy(update={"reference_videos": [str(refs[0]), str(short)]}), reference_mode=True
        )


# ------------------------------------------------------------------------------------------------ decode_latents


def test_decode_latents_cli_writes_mp4_and_png(tmp_path: Path, tiny_model_dir: Path) -> None:
    from ltx_train_lib.cli.decode_latents import main

    latents = tmp_path / "latents"
    (latents / "sub").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    torch.save(
        {"latents": torch.randn(8, 8, generator=g).bfloat16(), "num_frames": 2, "height": 2, "width": 2, "fps": 12.0},
        latents / "sub" / "clip.pt",
    )
    torch.save(
        {"latents": torch.randn(6, 8, generator=g).bfloat16(), "num_frames": 1, "height": 2, "width": 3, "fps": 1.0},
        latents / "still.pt",
    )
    torch.save(
        {"prompt_embeds": torch.zeros(256, 32), "prompt_attention_mask": torch.ones(256, dtype=torch.bool)},
        latents / "caption.pt",
    )
    torch.save({"latents": torch.zeros(8, 8)}, latents / "broken.pt")
    out = tmp_path / "decoded"
    assert main([str(latents), str(out), "--model-source", "tiny", "--device", "cpu", "--seed", "1"]) == 1  # broken.pt
    clip = probe_media(out / "sub" / "clip.mp4")
    assert (clip.num_frames, clip.width, clip.height, round(clip.fps)) == (9, 64, 64, 12)
    assert probe_media(out / "still.png").width == 96 and probe_media(out / "still.png").height == 64
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["still.png", "sub/clip.mp4"]
    (latents / "broken.pt").unlink()
    assert main([str(latents), str(tmp_path / "again"), "--model-source", "tiny", "--device", "cpu"]) == 0
    assert main([str(tmp_path / "nope"), str(out), "--model-source", "tiny"]) == 2


def test_script_wrappers_run_from_a_checkout() -> None:
    for script, flag in (("compute_condition.py", "--override"), ("decode_latents.py", "--vae-tiling")):
        run = subprocess.run(
            [sys.executable, str(REPO / "scripts" / script), "--help"], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0 and flag in run.stdout, run.stderr
