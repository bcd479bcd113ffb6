"""Preprocessing into .precomputed/: layout and tensor schema, buckets, incremental re-runs, pairing by media path,
bad inputs, crash safety and the CLI. Everything runs on generated media with the tiny random-weight model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ltx_train_lib import precompute
from ltx_train_lib.errors import ConfigError, DatasetError, OutputError
from ltx_train_lib.media import probe_media
from ltx_train_lib.precompute import (
    LOCK_NAME,
    MANIFEST_NAME,
    build_prompt,
    clean_llm_prefix,
    encode_prompts,
    preprocess_dataset,
)
from ltx_train_lib.synthetic import make_image, make_scene_video

REPO = Path(__file__).resolve().parents[1]
BUCKETS = "64x64x9;96x64x17;64x64x1"


@pytest.fixture(scope="module", autouse=True)
def _offline_tiny_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTX_TRAIN_CACHE", str(tmp_path_factory.mktemp("ltx_cache")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def t5():
    from ltx_train_lib.models.loader import load_components

    comps = load_components("tiny", components=("text_encoder", "tokenizer"))
    return comps.tokenizer, comps.text_encoder.eval()


def embed(t5, prompt: str) -> dict[str, torch.Tensor]:
    return encode_prompts(t5[0], t5[1], [prompt])[0]


def write_captions(folder: Path, entries: list[tuple[str, str]], name: str = "captions.json") -> Path:
    path = folder / name
    path.write_text(json.dumps([{"caption": c, "media_path": m} for c, m in entries]))
    return path


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def files(root: Path) -> set[str]:
    """The files of the current cache: the top level of the output folder (without the keyed caches in cache/ and
    the lock file)."""
    return {
        rel
        for rel in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        if not rel.startswith(f"{precompute.STORE_DIR}/") and rel != LOCK_NAME
    }


def assert_unlocked(out: Path) -> None:
    """The run released its lock (another taker gets it at once)."""
    from ltx_train_lib.locks import folder_lock

    with folder_lock(out, "test"):
        pass


def assert_consistent(out: Path) -> None:
    """Nothing half-written and no orphan: latents and conditions name the same samples."""
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    lat = {p.relative_to(out / "latents") for p in (out / "latents").rglob("*.pt")}
    cond = {p.relative_to(out / "conditions") for p in (out / "conditions").rglob("*.pt")}
    assert lat == cond


@pytest.fixture(scope="module")
def layout_run(tmp_path_factory):
    """Two clips and an image in a subfolder, three buckets, decode on: the run the layout tests read."""
    root = tmp_path_factory.mktemp("layout")
    clips = root / "clips"
    clips.mkdir()
    make_scene_video(clips / "a.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=0)
    make_scene_video(clips / "b.mp4", cuts=(), num_frames=20, fps=25, size=(96, 64), seed=1)
    make_image(clips / "still.png", size=(80, 64), seed=2)
    write_captions(
        root,
        [("a red square moves", "clips/a.mp4"), ("blue stripes scroll", "clips/b.mp4"), ("a still", "clips/still.png")],
    )
    seen: list[tuple[int, int, str]] = []
    result = preprocess_dataset(
        root, BUCKETS, model_source="tiny", decode_videos=True, progress=lambda d, t, m: seen.append((d, t, m))
    )
    return root, result, seen


def test_cache_layout_and_tensor_schema(layout_run, t5):
    root, result, seen = layout_run
    out = root / ".precomputed"
    assert result.output_dir == out and result.ok and result.skipped == []
    assert sorted(result.processed) == ["clips/a.mp4", "clips/b.mp4", "clips/still.png"]
    assert files(out) == {
        MANIFEST_NAME,
        "latents/clips/a.pt",
        "latents/clips/b.pt",
        "latents/clips/still.pt",
        "conditions/clips/a.pt",
        "conditions/clips/b.pt",
        "conditions/clips/still.pt",
        "decoded_videos/clips/a.mp4",
        "decoded_videos/clips/b.mp4",
        "decoded_videos/clips/still.png",
    }
    # (latent frames, rows, cols, fps) per sample: 32x spatial, 8x temporal compression.
    expected = {"a": (2, 2, 2, 24.0), "b": (3, 2, 3, 25.0), "still": (1, 2, 2, 1.0)}
    for name, (f, h, w, fps) in expected.items():
        lat = load(out / "latents" / "clips" / f"{name}.pt")
        assert set(lat) == {"latents", "num_frames", "height", "width", "fps"}
        assert lat["latents"].dtype == torch.bfloat16 and lat["latents"].shape == (f * h * w, 8)
        assert (lat["num_frames"], lat["height"], lat["width"]) == (f, h, w)
        assert all(type(lat[k]) is int for k in ("num_frames", "height", "width"))
        assert type(lat["fps"]) is float and lat["fps"] == pytest.approx(fps)
        assert torch.isfinite(lat["latents"].float()).all() and lat["latents"].float().std() > 0
        cond = load(out / "conditions" / "clips" / f"{name}.pt")
        assert set(cond) == {"prompt_embeds", "prompt_attention_mask"}
        assert cond["prompt_embeds"].dtype == torch.bfloat16 and cond["prompt_embeds"].shape == (256, 32)
        assert cond["prompt_attention_mask"].dtype == torch.bool and cond["prompt_attention_mask"].shape == (256,)
    # The mask covers the caption's tokens plus </s> and nothing else.
    tokens = t5[0]("a red square moves").input_ids
    assert int(load(out / "conditions/clips/a.pt")["prompt_attention_mask"].sum()) == len(tokens)
    # Progress went from 0 to its total, in order.
    assert seen and seen[-1][0] == seen[-1][1] and [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert_unlocked(out)
    assert_consistent(out)


def test_nearest_bucket_and_decoded_frame_counts(layout_run):
    root, result, _ = layout_run
    # a: 64x64, 12 frames -> 64x64x9; b: 96x64, 20 frames -> 96x64x17 (the most frames, then the aspect ratio).
    assert result.buckets == {"clips/a.mp4": "64x64x9", "clips/b.mp4": "96x64x17", "clips/still.png": "64x64x1"}
    dec = root / ".precomputed" / "decoded_videos" / "clips"
    a, b = probe_media(dec / "a.mp4"), probe_media(dec / "b.mp4")
    assert (a.num_frames, a.width, a.height) == (9, 64, 64)
    assert (b.num_frames, b.width, b.height) == (17, 96, 64)
    assert b.fps == pytest.approx(25.0)
    assert probe_media(dec / "still.png").width == 64


def test_cache_loads_in_the_trainer_dataset(layout_run):
    from ltx_train_lib.data import PrecomputedDataset

    root, _, _ = layout_run
    ds = PrecomputedDataset(root)
    assert len(ds) == 3
    assert sorted(ds.buckets()) == [(1, 2, 2), (2, 2, 2), (3, 2, 3)]


def test_latents_are_deterministic_per_sample(layout_run, tmp_path):
    """Same seed, same latents whatever the run, the output folder or the batch size; the seed matters."""
    root, _, _ = layout_run
    out = root / ".precomputed" / "latents" / "clips"
    # vae_tiling only tiles above 512 px, so at these sizes it must not change anything.
    again = preprocess_dataset(
        root, BUCKETS, model_source="tiny", output_dir=tmp_path / "b2", batch_size=2, vae_tiling=True
    )
    other_seed = preprocess_dataset(root, BUCKETS, model_source="tiny", output_dir=tmp_path / "s7", seed=7)
    assert again.ok and other_seed.ok
    for name in ("a", "b", "still"):
        first = load(out / f"{name}.pt")["latents"].float()
        assert torch.allclose(first, load(tmp_path / "b2/latents/clips" / f"{name}.pt")["latents"].float(), atol=1e-2)
        assert not torch.allclose(first, load(tmp_path / "s7/latents/clips" / f"{name}.pt")["latents"].float())
    # Random crops and frame picks are seeded per sample too: two fresh runs agree.
    rand = {"reshape_mode": "random", "frame_selection": "random", "model_source": "tiny"}
    preprocess_dataset(root, BUCKETS, output_dir=tmp_path / "r1", **rand)
    preprocess_dataset(root, BUCKETS, output_dir=tmp_path / "r2", **rand)
    for name in ("a", "b", "still"):
        r1, r2 = (load(tmp_path / r / "latents/clips" / f"{name}.pt")["latents"] for r in ("r1", "r2"))
        assert torch.equal(r1, r2)


def test_rerun_recomputes_only_what_changed(tmp_path, t5):
    clips = [("one.mp4", 0), ("two.mp4", 1), ("three.mp4", 2)]
    for name, seed in clips:
        make_scene_video(tmp_path / name, cuts=(), num_frames=30, fps=24, size=(64, 64), seed=seed)
    captions = {"one.mp4": "a red square", "two.mp4": "blue stripes", "three.mp4": "green noise"}
    write_captions(tmp_path, [(c, m) for m, c in captions.items()])
    out = tmp_path / ".precomputed"

    def run(**kw):
        return preprocess_dataset(tmp_path / "captions.json", "64x64x9", model_source="tiny", **kw)

    def stamps() -> dict[str, tuple[int, int]]:
        # The inode changes on every atomic replace, so this catches a rewrite even within one mtime tick.
        return {f: ((out / f).stat().st_ino, (out / f).stat().st_mtime_ns) for f in files(out) if f.endswith(".pt")}

    first = run()
    assert sorted(first.latents_computed) == sorted(first.conditions_computed) == sorted(captions)
    before = stamps()

    # Nothing changed: everything reused, no model loaded.
    same = run()
    assert same.reused == sorted(captions) or sorted(same.reused) == sorted(captions)
    assert same.processed == [] and stamps() == before

    # Edit one caption: only that sample's condition is recomputed.
    captions["two.mp4"] = "blue stripes scrolling to the left"
    write_captions(tmp_path, [(c, m) for m, c in captions.items()])
    edited = run()
    assert edited.processed == ["two.mp4"] and edited.conditions_computed == ["two.mp4"]
    assert edited.latents_computed == [] and sorted(edited.reused) == ["one.mp4", "three.mp4"]
    after = stamps()
    assert {f for f in after if after[f] != before[f]} == {"conditions/two.pt"}
    assert torch.equal(
        load(out / "conditions/two.pt")["prompt_embeds"], embed(t5, captions["two.mp4"])["prompt_embeds"]
    )
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["samples"]["two.mp4"]["caption"] == captions["two.mp4"]

    # Touch a media file (new mtime, same bytes): re-hashed, still reused.
    (tmp_path / "one.mp4").touch()
    assert run().processed == []

    # New bytes for one clip: only its latents are recomputed, its condition is kept.
    make_scene_video(tmp_path / "one.mp4", cuts=(), num_frames=30, fps=24, size=(64, 64), seed=9)
    changed = run()
    assert changed.latents_computed == ["one.mp4"] and changed.conditions_computed == []

    # A trigger word changes every prompt (conditions only); a frame selection changes every latent (latents only).
    token = run(id_token="sks")
    assert sorted(token.conditions_computed) == sorted(captions) and token.latents_computed == []
    assert json.loads((out / MANIFEST_NAME).read_text())["samples"]["three.mp4"]["prompt"] == "sks green noise"
    old_latent = load(out / "latents/three.pt")["latents"]
    centred = run(id_token="sks", frame_selection="center")
    assert sorted(centred.latents_computed) == sorted(captions) and centred.conditions_computed == []
    assert not torch.equal(old_latent, load(out / "latents/three.pt")["latents"])

    # A sample removed from the caption file loses its cached files.
    del captions["three.mp4"]
    write_captions(tmp_path, [(c, m) for m, c in captions.items()])
    removed = run(id_token="sks", frame_selection="center")
    assert removed.removed == ["three.mp4"] and removed.processed == []
    assert files(out) == {MANIFEST_NAME, "latents/one.pt", "latents/two.pt", "conditions/one.pt", "conditions/two.pt"}


def test_captions_never_mispaired_when_a_short_clip_is_filtered(tmp_path, t5):
    """The reference's issue #59: dropping a short clip shifted every later caption onto the wrong latents."""
    entries = []
    for i in range(4):
        name = f"clip{i}.mp4"
        frames = 4 if i == 1 else 10  # clip1 is too short for the 9-frame bucket
        make_scene_video(tmp_path / name, cuts=(), num_frames=frames, fps=24, size=(64, 64), seed=i)
        entries.append((f"caption number {i} unique words {'abcd'[i]}", name))
    write_captions(tmp_path, entries)
    result = preprocess_dataset(tmp_path, "64x64x9", model_source="tiny")
    assert [p for p, _ in result.skipped] == ["clip1.mp4"] and "4 frames" in result.skipped[0][1]
    out = tmp_path / ".precomputed"
    for caption, name in entries:
        stem = Path(name).stem
        if name == "clip1.mp4":
            assert not (out / "latents" / f"{stem}.pt").exists() and not (out / "conditions" / f"{stem}.pt").exists()
            continue
        cond = load(out / "conditions" / f"{stem}.pt")
        want = embed(t5, caption)
        assert torch.equal(cond["prompt_embeds"], want["prompt_embeds"]), name
        assert torch.equal(cond["prompt_attention_mask"], want["prompt_attention_mask"]), name

    # Each latent belongs to its own media: the same clips in reverse order, without the short one, give the same
    # files under the same names.
    kept = [e for e in entries if e[1] != "clip1.mp4"][::-1]
    write_captions(tmp_path, kept, name="reversed.json")
    again = preprocess_dataset(tmp_path / "reversed.json", "64x64x9", model_source="tiny", output_dir=tmp_path / "rev")
    assert again.ok
    latents = {}
    for _, name in kept:
        stem = Path(name).stem
        a, b = load(out / "latents" / f"{stem}.pt")["latents"], load(tmp_path / "rev/latents" / f"{stem}.pt")["latents"]
        assert torch.equal(a, b), name
        latents[stem] = a
    stems = sorted(latents)
    assert all(not torch.equal(latents[x], latents[y]) for x in stems for y in stems if x < y)
    assert_consistent(out)


def _write_bad_media(folder: Path) -> None:
    import av
    import numpy as np

    make_scene_video(folder / "good.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=0)
    make_scene_video(folder / "good2.mp4", cuts=(), num_frames=12, fps=24, size=(64, 64), seed=1)
    make_scene_video(folder / "short.mp4", cuts=(), num_frames=5, fps=24, size=(64, 64), seed=2)
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    whole = (folder / "good.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    with av.open(str(folder / "audio_only.mp4"), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    c = av.open(str(folder / "no_frames.mp4"), "w", format="mp4")  # a video track that never got a frame
    stream = c.add_stream("libx264", rate=24)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    c.start_encoding()
    c.close()
    (folder / "a_folder.mp4").mkdir()
    (folder / "notes.txt").write_text("not media")
    make_image(folder / "still.png", size=(64, 64))


BAD_ENTRIES = [
    ("a good clip", "good.mp4"),
    ("random bytes", "corrupt.mp4"),
    ("cut off", "truncated.mp4"),
    ("sound only", "audio_only.mp4"),
    ("empty track", "no_frames.mp4"),
    ("a directory", "a_folder.mp4"),
    ("too short", "short.mp4"),
    ("   ", "good2.mp4"),
    ("not there", "ghost.mp4"),
    ("same media again", "good.mp4"),
    ("a text file", "notes.txt"),
    ("an image without a 1-frame bucket", "still.png"),
]
# media -> words its skip reason must contain
BAD_REASONS = {
    "corrupt.mp4": "readable",
    "truncated.mp4": "readable",
    "audio_only.mp4": "audio",
    "no_frames.mp4": "video stream",
    "a_folder.mp4": "is a folder",
    "short.mp4": "5 frames",
    "good2.mp4": "empty caption",
    "ghost.mp4": "does not exist",
    "notes.txt": "unsupported file type",
    "still.png": "1 frame",
}


def test_bad_inputs_are_reported_and_nothing_half_written(tmp_path, t5):
    _write_bad_media(tmp_path)
    write_captions(tmp_path, BAD_ENTRIES)
    result = preprocess_dataset(tmp_path, "64x64x9", model_source="tiny")
    reasons = dict(result.skipped)
    for media, words in BAD_REASONS.items():
        assert media in reasons, f"{media} not reported: {result.skipped}"
        assert words in reasons[media], (media, reasons[media])
    dup = [r for p, r in result.skipped if p == "good.mp4"]
    assert len(dup) == 1 and "repeats" in dup[0]
    assert result.processed == ["good.mp4"] and not result.ok
    out = tmp_path / ".precomputed"
    assert files(out) == {MANIFEST_NAME, "latents/good.pt", "conditions/good.pt"}
    # The first entry of a repeated media file wins.
    assert torch.equal(load(out / "conditions/good.pt")["prompt_embeds"], embed(t5, "a good clip")["prompt_embeds"])
    assert "1 sample(s) ready" in result.summary() and "corrupt.mp4" in result.summary()


def test_a_crash_mid_write_leaves_no_partial_file_and_a_rerun_resumes(tmp_path, monkeypatch):
    for i in range(3):
        make_scene_video(tmp_path / f"c{i}.mp4", cuts=(), num_frames=10, fps=24, size=(64, 64), seed=i)
    write_captions(tmp_path, [(f"clip {i}", f"c{i}.mp4") for i in range(3)])
    real_save = torch.save
    calls = {"latents": 0}

    def flaky_save(obj, f, *a, **kw):
        if "latents" in obj:
            calls["latents"] += 1
            if calls["latents"] == 2:
                Path(f).write_bytes(b"half a tensor")  # a partial write, then the crash
                raise OSError("disk full (simulated)")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(OutputError, match="simulated") as failed:
        preprocess_dataset(tmp_path, "64x64x9", model_source="tiny")
    out = tmp_path / ".precomputed"
    assert str(out) in str(failed.value) and "kept" in str(failed.value)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    # The run did not complete: nothing was published (no cache for the trainer to misread); its own cache keeps
    # what it finished, every latents file with its condition.
    assert files(out) == set()
    (own,) = (out / precompute.STORE_DIR).iterdir()
    assert len(list((own / "latents").glob("*.pt"))) == 1
    assert {p.name for p in (own / "latents").glob("*.pt")} <= {p.name for p in (own / "conditions").glob("*.pt")}
    assert_unlocked(out)
    monkeypatch.setattr(torch, "save", real_save)
    resumed = preprocess_dataset(tmp_path, "64x64x9", model_source="tiny")
    assert resumed.ok and len(resumed.latents_computed) == 2 and resumed.conditions_computed == []
    assert_consistent(out)
    assert len(list((out / "latents").glob("*.pt"))) == 3


def test_prompt_building():
    assert clean_llm_prefix("The video shows a dog running.") == "a dog running."
    assert clean_llm_prefix("  In this video clip, a cat sits") == "a cat sits"
    assert clean_llm_prefix("Caption: red car") == "red car"
    assert clean_llm_prefix("A dog. The video shows more.") == "A dog. The video shows more."
    assert build_prompt("The image depicts a tree", id_token="sks", remove_llm_prefixes=True) == "sks a tree"
    assert build_prompt("The image depicts a tree", id_token=" sks ") == "sks The image depicts a tree"
    assert build_prompt("  a tree ") == "a tree"


def test_argument_errors_raise_with_a_fix(tmp_path):
    write_captions(tmp_path, [("x", "x.mp4")])
    with pytest.raises(ConfigError, match="multiples of 32"):
        preprocess_dataset(tmp_path, "60x64x9", model_source="tiny")
    with pytest.raises(ConfigError, match="reshape mode"):
        preprocess_dataset(tmp_path, "64x64x9", model_source="tiny", reshape_mode="left")
    with pytest.raises(ConfigError, match="unknown model version"):
        preprocess_dataset(tmp_path, "64x64x9", model_source="LTXV_9B_1.0")
    with pytest.raises(DatasetError, match="not found"):
        preprocess_dataset(tmp_path / "nothing_here", "64x64x9", model_source="tiny")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DatasetError, match="captions.json"):
        preprocess_dataset(tmp_path / "empty_dir", "64x64x9", model_source="tiny")


def test_another_run_on_the_same_cache_is_refused(tmp_path):
    """The lock is the operating system's: a live holder refuses the run, naming it; once it dies, it is free."""
    import os
    import signal
    import textwrap

    write_captions(tmp_path, [("x", "x.mp4")])
    out = tmp_path / ".precomputed"
    code = textwrap.dedent(f"""
        import time
        from ltx_train_lib.locks import folder_lock
        with folder_lock({str(out)!r}, "preprocessing run"):
            print("locked", flush=True)
            time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(DatasetError, match=rf"another preprocessing run \(pid {holder.pid} on .*Wait for it"):
            preprocess_dataset(tmp_path, "64x64x9", model_source="tiny")
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without releasing anything: the OS frees the lock
        holder.wait()
    assert preprocess_dataset(tmp_path, "64x64x9", model_source="tiny").skipped[0][0] == "x.mp4"


def test_cli_exit_codes(layout_run, tmp_path, capsys):
    from ltx_train_lib.cli.preprocess import main

    root, _, _ = layout_run
    # Everything fine (a cache hit: quick) -> 0.
    assert main([str(root), "--resolution-buckets", BUCKETS, "--model-source", "tiny", "--decode-videos"]) == 0
    assert "3 reused" in capsys.readouterr().out
    # Something skipped -> 1, and the skipped file is named.
    make_scene_video(tmp_path / "ok.mp4", cuts=(), num_frames=10, fps=24, size=(64, 64))
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    write_captions(tmp_path, [("fine", "ok.mp4"), ("broken", "bad.mp4")])
    assert main([str(tmp_path / "captions.json"), "--resolution-buckets", "64x64x9", "--model-source", "tiny"]) == 1
    out = capsys.readouterr().out
    assert "1 skipped" in out and "bad.mp4: is not a readable video container" in out
    # Bad arguments -> 2 with the message.
    assert main([str(root), "--resolution-buckets", "64x64x10", "--model-source", "tiny"]) == 2
    assert "8k+1" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json"), "--resolution-buckets", "64x64x9"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main([str(root), "--resolution-buckets", "64x64x9", "--model-source", "LTXV_9B_1.0"]) == 2
    assert "unknown model version" in capsys.readouterr().err
    assert main([str(root), "--resolution-buckets", "64x64x9", "--reshape-mode", "left"]) == 2
    assert main([str(root)]) == 2  # --resolution-buckets is required


def test_script_wrapper_runs_from_a_checkout(tmp_path):
    script = REPO / "scripts" / "preprocess_dataset.py"
    help_run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0 and "--resolution-buckets" in help_run.stdout
    bad = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "--resolution-buckets", "64x64x9"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "captions.json" in bad.stderr


def test_module_import_is_light():
    """ComfyUI imports every node pack at start-up: importing the module must not pull in torch or diffusers."""
    code = "import sys, ltx_train_lib.precompute, ltx_train_lib.cli.preprocess; print('torch' in sys.modules or 'diffusers' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "False"
    assert precompute.PRECOMPUTED_DIR == ".precomputed"


def test_component_paths_override_the_model_source(tmp_path: Path, tiny_model_dir: Path) -> None:
    """ComfyUI keeps the VAE and T5 as separate files/folders: they can be given apart from the model source."""
    from ltx_train_lib.errors import ModelLoadError
    from ltx_train_lib.synthetic import make_scene_video

    make_scene_video(tmp_path / "a.mp4", cuts=(), num_frames=12, fps=12, size=(64, 64))
    (tmp_path / "captions.json").write_text('[{"caption": "a red square", "media_path": "a.mp4"}]')
    result = preprocess_dataset(
        tmp_path / "captions.json", "64x64x9", model_source="tiny",
        vae_path=str(tiny_model_dir / "vae"), text_encoder_path=str(tiny_model_dir / "text_encoder"),
        tokenizer_path=str(tiny_model_dir / "tokenizer"),
    )
    assert result.ok and len(result.processed) == 1
    manifest = (tmp_path / ".precomputed" / ".manifest.json").read_text()
    assert str(tiny_model_dir / "vae") in manifest
    with pytest.raises(ModelLoadError, match="vae_path: '.*missing' does not exist"):
        preprocess_dataset(tmp_path / "captions.json", "64x64x9", model_source="tiny", vae_path=str(tmp_path / "missing"))


# ------------------------------------------------------------------------------------------------ one schema


def test_keyword_api_is_the_schema():
    """preprocess_dataset's keywords are exactly PrecomputeConfig's fields, with the schema's defaults."""
    import inspect

    from ltx_train_lib.precompute import PrecomputeConfig
    from ltx_train_lib.precompute.config import config_defaults

    params = inspect.signature(preprocess_dataset).parameters
    assert set(params) - {"progress"} == set(PrecomputeConfig.model_fields)
    defaults = config_defaults()
    for name, param in params.items():
        if name in defaults:
            assert param.default == defaults[name], name
    for name, info in PrecomputeConfig.model_fields.items():
        assert info.description and len(info.description) > 20, f"{name}: every field is described"


def test_cli_flags_come_from_the_schema():
    from ltx_train_lib.cli.preprocess import build_parser
    from ltx_train_lib.precompute import PrecomputeConfig
    from ltx_train_lib.precompute.config import cli_flags

    parser = build_parser()
    args = parser.parse_args(["data", "--resolution-buckets", "64x64x9"])
    for name, info in PrecomputeConfig.model_fields.items():
        if not info.is_required():
            assert getattr(args, name) == info.get_default(call_default_factory=True), f"{name}: CLI default"
    actions = {a.dest: a for a in parser._actions}
    for name, info in PrecomputeConfig.model_fields.items():
        action = actions[name]
        assert action.help.replace("%%", "%").startswith(info.description), name
        flags = cli_flags(name)
        if flags[0].startswith("-"):
            assert action.option_strings == flags and action.required == info.is_required(), name
    assert actions["reshape_mode"].choices == ["center", "random"]
    assert actions["frame_selection"].choices == ["first", "center", "random"]
    # The reference trainer's documented flag names keep working (reference/ltx-video-trainer.md §1.2).
    reference_flags = (
        "--resolution-buckets --caption-column --video-column --batch-size --device --load-text-encoder-in-8bit "
        "--vae-tiling --output-dir --model-source --id-token --decode-videos --remove-llm-prefixes --reference-column"
    ).split()
    known = {s for a in parser._actions for s in a.option_strings}
    assert set(reference_flags) <= known and "--media-column" in known
    legacy = parser.parse_args(
        ["d", "--resolution-buckets", "64x64x9", "--video-column", "clip", "--id-token", "zxq", "--decode-videos",
         "--reference-column", "ref", "--load-text-encoder-in-8bit", "--batch-size", "3"]
    )
    assert (legacy.media_column, legacy.id_token, legacy.decode_videos, legacy.reference_column) == ("clip", "zxq", True, "ref")
    assert legacy.load_text_encoder_in_8bit is True and legacy.batch_size == 3


def test_pipeline_flags_come_from_the_schema():
    from ltx_train_lib.cli.pipeline import PIPELINE_PRECOMPUTE_FIELDS, build_parser
    from ltx_train_lib.precompute import PrecomputeConfig

    args = build_parser().parse_args(["x", "--resolution-buckets", "64x64x9", "--config-template", "t", "--rank", "4"])
    for name in PIPELINE_PRECOMPUTE_FIELDS:
        info = PrecomputeConfig.model_fields[name]
        if not info.is_required():
            assert getattr(args, name) == info.get_default(), name


def test_docs_options_table_is_current():
    from ltx_train_lib.cli.docs import REGENERATE, stale

    assert stale() == [], f"the options table is stale: edit PrecomputeConfig, then run `{REGENERATE}`"


def test_bad_options_name_the_input(tmp_path, capsys):
    from ltx_train_lib.cli.preprocess import main
    from ltx_train_lib.precompute import PrecomputeConfig

    write_captions(tmp_path, [("x", "x.mp4")])
    assert main([str(tmp_path), "--resolution-buckets", "64x64x9", "--batch-size", "0"]) == 2
    assert "--batch-size 0: must be at least 1" in capsys.readouterr().err
    assert main([str(tmp_path), "--resolution-buckets", "64x64x9", "--frame-selection", "middle"]) == 2
    with pytest.raises(ConfigError, match="unknown preprocessing option 'frame_selectoin': did you mean 'frame_selection'"):
        PrecomputeConfig.from_options({"dataset_file": "d", "resolution_buckets": "64x64x9", "frame_selectoin": "x"})
    with pytest.raises(ConfigError, match="resolution buckets: missing; give one or more WIDTHxHEIGHTxFRAMES"):
        preprocess_dataset(tmp_path)
    with pytest.raises(ConfigError, match="batch size 0: must be at least 1"):
        preprocess_dataset(tmp_path, "64x64x9", batch_size=0)
    with pytest.raises(ConfigError, match="caption column: is empty"):
        preprocess_dataset(tmp_path, "64x64x9", caption_column=" ")
    config = PrecomputeConfig(dataset_file=str(tmp_path), resolution_buckets="64x64x9", model_source="tiny")
    with pytest.raises(ConfigError, match="got a PrecomputeConfig and also resolution_buckets, seed"):
        preprocess_dataset(config, "64x64x9", seed=1)


def test_a_config_runs_as_the_keywords_do(layout_run):
    """The same options as a PrecomputeConfig: the layout run's cache is reused as it is."""
    from ltx_train_lib.precompute import PrecomputeConfig

    root, first, _ = layout_run
    config = PrecomputeConfig(
        dataset_file=root, resolution_buckets=BUCKETS.split(";"), model_source="tiny", decode_videos=True, device="auto"
    )
    assert config.resolution_buckets == BUCKETS and config.device is None
    again = preprocess_dataset(config)
    assert again.ok and sorted(again.reused) == sorted(first.processed) and not again.processed


def test_package_units_stay_small_and_only_model_io_touches_models():
    """Each subject in its module; model code (ltx_train_lib.models, transformers, diffusers) only via model_io."""
    import ast

    package = REPO / "ltx_train_lib" / "precompute"
    heavy = ("ltx_train_lib.models", "transformers", "diffusers")
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 200 or "200 lines" in (ast.get_docstring(node) or ""), f"{path.name}:{node.name}"
            if path.name != "model_io.py" and isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.startswith(heavy) for n in names), f"{path.name} imports {names}: go through model_io"
