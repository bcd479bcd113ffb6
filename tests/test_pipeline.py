"""run_pipeline: BASENAME_raw/ -> scenes -> captions -> latents -> LoRA -> ComfyUI LoRA; a re-run skips finished stages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ltx_train_lib.errors import ConfigError, DatasetError
from ltx_train_lib.pipeline import run_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pipeline_end_to_end_then_rerun_skips_finished_stages(tmp_path: Path, tiny_model_dir: Path) -> None:
    raw = tmp_path / "clips_raw"
    raw.mkdir()
    shutil.copy2(ROOT / "samples" / "clips" / "sample_a.mp4", raw / "sample_a.mp4")
    args = ["clips", "--work-dir", str(tmp_path), "--resolution-buckets", "64x64x9", "--config-template",
            str(ROOT / "configs" / "tiny_demo.yaml"), "--rank", "4", "--captioner", "tiny", "--steps", "4",
            "--disable_progress_bars", "--id-token", "TOK"]
    first = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_pipeline.py"), *args], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = tmp_path / "outputs" / "clips_lora_r4"
    comfy = load_file(str(out / "lora_weights_comfy.safetensors"))
    assert comfy and all(k.startswith("diffusion_model.") for k in comfy)
    scenes = sorted(p.name for p in (tmp_path / "clips_scenes").glob("*.mp4"))
    assert scenes and all(n.startswith("sample_a-Scene-") for n in scenes)
    assert (tmp_path / "clips_scenes" / "captions.json").is_file()
    assert list((tmp_path / "clips_scenes" / ".precomputed" / "decoded_videos").rglob("*.mp4"))
    assert (out / "config.yaml").is_file() and "TOK " in (out / "training_config.yaml").read_text()
    for name in ("lora_comfy", "validation_samples", "decoded_videos", "captions"):
        assert f"  {name}" in first.stdout

    second = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_pipeline.py"), *args], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "0 split, 1 already split" in second.stdout
    assert "0 captioned" in second.stdout
    assert "0 computed" in second.stdout
    assert "train      skipped (current)" in second.stdout


def test_pipeline_bad_inputs(tmp_path: Path) -> None:
    template = ROOT / "configs" / "tiny_demo.yaml"
    with pytest.raises(DatasetError, match="clips_raw.*does not exist; put the raw videos"):
        run_pipeline("clips", "64x64x9", template, 4, work_dir=tmp_path)
    with pytest.raises(ConfigError, match="8k\\+1"):
        run_pipeline("clips", "64x64x10", template, 4, work_dir=tmp_path)
    with pytest.raises(ConfigError, match="--config-template: '.*nope.yaml' does not exist"):
        run_pipeline("clips", "64x64x9", tmp_path / "nope.yaml", 4, work_dir=tmp_path)
    with pytest.raises(ConfigError, match="--rank 0"):
        run_pipeline("clips", "64x64x9", template, 0, work_dir=tmp_path)
