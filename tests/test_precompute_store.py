"""Caches that survive a failed or changed run: one cache per model/encoder/text encoding/bucket settings under
.precomputed/cache/<key>/, the current one published at the top (what the trainers read) only when a run completes;
a full disk or a read-only folder is one message (exit 2) and leaves the cache as it was. Tiny model, real files."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from ltx_train_lib import precompute
from ltx_train_lib.data import PrecomputedDataset
from ltx_train_lib.errors import DatasetError, ModelLoadError
from ltx_train_lib.locks import LOCK_NAME
from ltx_train_lib.precompute import MANIFEST_NAME, STORE_DIR, preprocess_dataset
from ltx_train_lib.synthetic import make_scene_video

BUCKETS = "64x64x9"
NAMES = ("one.mp4", "two.mp4", "three.mp4")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for i, name in enumerate(NAMES):
        make_scene_video(root / name, cuts=(), num_frames=10, fps=24, size=(64, 64), seed=i)
    write_captions(root, {name: f"clip number {i} moves" for i, name in enumerate(NAMES)})
    return root


def write_captions(root: Path, captions: dict[str, str]) -> None:
    (root / "captions.json").write_text(json.dumps([{"caption": c, "media_path": m} for m, c in captions.items()]))


def run(root: Path, model_source: str = "tiny", **kw):
    return preprocess_dataset(root, BUCKETS, model_source=model_source, device="cpu", **kw)


def top_level(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the current cache (the top level): its bytes and inode (a rewrite changes the inode)."""
    return {
        p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_ino)
        for p in sorted(out.rglob("*"))
        if p.is_file() and STORE_DIR not in p.relative_to(out).parts and p.name != LOCK_NAME
    }


def caches(out: Path) -> list[str]:
    return sorted(p.name for p in (out / STORE_DIR).iterdir())


def manifest_settings(out: Path) -> dict:
    return json.loads((out / MANIFEST_NAME).read_text())["settings"]


@pytest.fixture
def tiny_copy(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """The tiny model as a plain diffusers folder elsewhere: a 'folder' source, so another VAE and text encoder."""
    copy = tmp_path / "tiny_copy"
    shutil.copytree(tiny_model_dir, copy)
    return copy


def test_switching_models_and_back_reuses_the_first_cache(dataset: Path, tiny_copy: Path):
    out = dataset / ".precomputed"
    first = run(dataset)
    assert sorted(first.processed) == sorted(NAMES) and first.cache_dir.parent == out / STORE_DIR
    first_key = first.cache_dir.name
    assert first_key.startswith("ltxv-comfyui-")
    # The top level is the run's cache, file for file (hard links: the same bytes on disk).
    for rel in ("latents/one.pt", "conditions/one.pt", MANIFEST_NAME):
        assert (out / rel).samefile(first.cache_dir / rel)

    other = run(dataset, str(tiny_copy))
    assert sorted(other.latents_computed) == sorted(other.conditions_computed) == sorted(NAMES)
    assert other.cache_dir.name != first_key and caches(out) == sorted([first_key, other.cache_dir.name])
    assert manifest_settings(out)["model_source"] == str(tiny_copy)
    assert (out / "latents/one.pt").samefile(other.cache_dir / "latents/one.pt")

    back = run(dataset)
    assert back.processed == [] and back.latents_computed == back.conditions_computed == []
    assert sorted(back.reused) == sorted(NAMES) and back.cache_dir == first.cache_dir
    assert manifest_settings(out)["model_source"] == "tiny"
    assert (out / "latents/one.pt").samefile(first.cache_dir / "latents/one.pt")
    assert len(PrecomputedDataset(dataset, text_encoding="comfyui")) == 3
    # decode_latents.py on the whole folder decodes the current cache, not every kept one.
    from ltx_train_lib.cli.decode_latents import find_latent_files

    assert sorted(p.relative_to(out).as_posix() for p in find_latent_files(out)) == sorted(
        f"{d}/{Path(n).stem}.pt" for d in ("conditions", "latents") for n in NAMES
    )


def test_a_failing_run_leaves_the_current_cache_intact_and_trainable(dataset: Path, tmp_path: Path, capsys):
    from ltx_train_lib.cli.preprocess import main

    out = dataset / ".precomputed"
    run(dataset)
    before = top_level(out)
    first_cache = top_level(out / STORE_DIR)
    broken = tmp_path / "broken_model"  # a folder source that holds no model: it cannot load
    broken.mkdir()
    with pytest.raises(ModelLoadError):
        run(dataset, str(broken))
    assert top_level(out) == before and {k: v for k, v in top_level(out / STORE_DIR).items() if k in first_cache} == first_cache
    # The same from the command line: exit 2, one message, the cache still as it was.
    capsys.readouterr()
    assert main([str(dataset), "--resolution-buckets", BUCKETS, "--model-source", str(broken), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error: ")] and "Traceback" not in err
    assert str(broken) in err
    assert top_level(out) == before
    ds = PrecomputedDataset(dataset, text_encoding="comfyui")
    assert len(ds) == 3 and ds[0]["latents"].shape == (8, 8)
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.training.trainer import Trainer
    from tests.conftest import tiny_config_dict

    cfg = tiny_config_dict(dataset, tmp_path / "train", optimization__steps=1, optimization__batch_size=1,
                           checkpoints__interval=None)
    assert Trainer(config_from_dict(cfg)).train().status == "done"
    # The failed run's own cache stays beside the good one, for the next try; the lock is free.
    assert len(caches(out)) == 2
    from ltx_train_lib.locks import folder_lock

    with folder_lock(out, "test"):
        pass


def test_a_changed_run_publishes_only_when_complete(dataset: Path, monkeypatch):
    """A Cancel (or a crash) in the middle of a run with new settings leaves the top level as it was."""
    from ltx_train_lib.precompute import model_io

    out = dataset / ".precomputed"
    run(dataset)
    before = top_level(out)
    real = model_io.encode_latents
    calls = []

    def cancel_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # what a Cancel in ComfyUI raises through the progress callback
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_io, "encode_latents", cancel_after_one)
    with pytest.raises(KeyboardInterrupt):
        run(dataset, frame_selection="center")
    assert top_level(out) == before
    monkeypatch.setattr(model_io, "encode_latents", real)
    resumed = run(dataset, frame_selection="center")
    assert len(resumed.latents_computed) == 2 and resumed.conditions_computed == []  # conditions came from the first
    assert top_level(out) != before and manifest_settings(out)["frame_selection"] == "center"


def test_without_hard_links_the_caches_are_copies(dataset: Path, monkeypatch):
    """FAT32/exFAT (and some shares) have no hard links: everything works on copies."""
    import os

    def no_links(src, dst, *a, **k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    out = dataset / ".precomputed"
    first = run(dataset)
    assert not (out / "latents/one.pt").samefile(first.cache_dir / "latents/one.pt")
    assert (out / "latents/one.pt").read_bytes() == (first.cache_dir / "latents/one.pt").read_bytes()
    stamps = top_level(out)
    assert run(dataset).processed == [] and top_level(out) == stamps  # nothing changed: nothing copied again
    switched = run(dataset, text_encoding="reference")
    assert switched.latents_computed == [] and sorted(switched.conditions_computed) == sorted(NAMES)
    back = run(dataset)
    assert back.processed == [] and json.loads((out / MANIFEST_NAME).read_text())["text_encoding"] == "comfyui"
    assert (out / "conditions/two.pt").read_bytes() == (first.cache_dir / "conditions/two.pt").read_bytes()


def test_a_cache_made_before_keyed_caches_is_kept(dataset: Path):
    """A .precomputed/ of an earlier version (conditions without the mask, no cache/ folder, no text encoding in
    its manifest): the trainer calls it 'reference', a new run keeps it as a cache of its own and reuses its latents."""
    out = dataset / ".precomputed"
    run(dataset, text_encoding="reference")
    shutil.rmtree(out / STORE_DIR)
    data = json.loads((out / MANIFEST_NAME).read_text())
    del data["text_encoding"]
    for name in ("text_encoding", "family", "cache_key"):
        del data["settings"][name]
    (out / MANIFEST_NAME).write_text(json.dumps(data))
    legacy = top_level(out)

    with pytest.raises(DatasetError, match="made with text encoding 'reference' but data.text_encoding is 'comfyui'"):
        PrecomputedDataset(dataset, text_encoding="comfyui")
    assert PrecomputedDataset(dataset, text_encoding="reference").text_encoding == "reference"

    new = run(dataset)  # the default: comfyui
    assert new.latents_computed == [] and sorted(new.conditions_computed) == sorted(NAMES)
    assert len(caches(out)) == 2
    again = run(dataset, text_encoding="reference")
    assert again.processed == []
    assert {k: v[0] for k, v in top_level(out).items() if k != MANIFEST_NAME} == {
        k: v[0] for k, v in legacy.items() if k != MANIFEST_NAME
    }


def test_a_full_disk_exits_2_with_one_message_and_keeps_the_cache(dataset: Path, monkeypatch, capsys):
    from ltx_train_lib.cli.preprocess import main

    out = dataset / ".precomputed"
    args = [str(dataset), "--resolution-buckets", BUCKETS, "--model-source", "tiny", "--device", "cpu"]
    assert main(args) == 0
    before = top_level(out)
    tensors = {k: v for k, v in top_level(out / STORE_DIR).items() if k.endswith(".pt")}
    write_captions(dataset, {name: f"a new caption for clip {i}" for i, name in enumerate(NAMES)})

    def disk_full(*a, **k):  # the lowest-level write of a tensor file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: output folder {out}: the disk is full") and "Free some disk space" in err
    assert "kept as it was" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert top_level(out) == before
    assert {k: v for k, v in top_level(out / STORE_DIR).items() if k.endswith(".pt")} == tensors
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_read_only_output_folder_exits_2_before_a_model_loads(dataset: Path, monkeypatch, capsys):
    import tempfile

    from ltx_train_lib.cli.preprocess import main
    from ltx_train_lib.precompute import model_io

    real_mkstemp = tempfile.mkstemp

    def read_only(*a, **k):
        if str(k.get("prefix", "")).startswith(".write_check"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(model_io, "_load_text_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    out = dataset / "elsewhere"
    assert main([str(dataset), "--resolution-buckets", BUCKETS, "--model-source", "tiny", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"output folder {out}: it is on a read-only file system" in err and "Traceback" not in err


def test_the_cache_key_names_what_made_it():
    from ltx_train_lib.precompute.manifest import cache_key

    settings = {"family": "ltxv", "vae": "tiny:x", "text_encoder": "tiny:x", "text_encoding": "comfyui",
                "buckets": ["64x64x9", "96x64x17"], "reshape_mode": "center", "frame_selection": "first", "seed": 42,
                "vae_tiling": False, "id_token": "sks", "model_source": "tiny"}
    key = cache_key(settings)
    assert key.startswith("ltxv-comfyui-") and cache_key({**settings, "buckets": ["96x64x17", "64x64x9"]}) == key
    assert cache_key({**settings, "id_token": None, "model_source": "other"}) == key  # per-sample, not per-cache
    for name, value in (("vae", "tiny:y"), ("text_encoder", "tiny:y"), ("text_encoding", "reference"),
                        ("buckets", ["64x64x9"]), ("seed", 1), ("frame_selection", "center")):
        assert cache_key({**settings, name: value}) != key, name
    assert precompute.cache_key({}).startswith("ltxv-reference-")  # a manifest of an earlier version
