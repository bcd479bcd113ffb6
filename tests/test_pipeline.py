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


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda t: t.replace("learning_rate: 1e-3", "learning_rat: 1e-3"),
         r"--config-template '.*bad_template.yaml': invalid training config:\n  optimization.learning_rat: unknown key; did you mean 'learning_rate'\?"),
        (lambda t: t.replace('model_source: "tiny"', 'model_source: "LTXV_9B_1.0"'), r"model.model_source: .*LTXV_9B_1.0"),
        (lambda t: t.replace("steps: 40 ", "steps: 40000000000 "), r"optimization.steps: steps 40,000,000,000 is more than the limit"),
        (lambda t: t.replace("rank: [RANK]", "rank: [RANK"), r"--config-template: '.*bad_template.yaml' is not valid YAML"),
        (lambda t: t.replace("optimization:\n", "optimization: 3\nx:\n"), r"'optimization' must be a section of settings"),
    ],
)
def test_a_bad_config_template_fails_before_any_stage(tmp_path: Path, capsys, edit, pattern: str) -> None:
    """The template is validated as the training config it becomes before scenes are split or clips captioned: in
    well under 2 s, with nothing written (no BASENAME_scenes/ folder)."""
    import re
    import time

    from ltx_train_lib.cli.pipeline import main

    raw = tmp_path / "clips_raw"
    raw.mkdir()
    shutil.copy2(ROOT / "samples" / "clips" / "sample_a.mp4", raw / "sample_a.mp4")
    template = tmp_path / "bad_template.yaml"
    template.write_text(edit((ROOT / "configs" / "tiny_demo.yaml").read_text()))
    args = ["clips", "--work-dir", str(tmp_path), "--resolution-buckets", "64x64x9", "--config-template", str(template),
            "--rank", "4", "--captioner", "tiny"]
    t0 = time.perf_counter()
    code = main(args)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 2.0, (code, elapsed, err)
    assert err.startswith("error: ") and err.count("error:") == 1 and "Traceback" not in err
    assert re.search(pattern, err), err
    assert not (tmp_path / "clips_scenes").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad_template.yaml", "clips_raw"]


def test_pipeline_checks_every_argument_first(tmp_path: Path) -> None:
    template = ROOT / "configs" / "tiny_demo.yaml"
    (tmp_path / "clips_raw").mkdir()
    for kwargs, pattern in (
        ({"steps": 0}, r"--steps 0: must be between 1 and 10,000,000"),
        ({"steps": 10**9}, r"--steps 1000000000: must be between 1"),
        ({"model": "LTXV_9B_1.0"}, r"^--model: unknown model version 'LTXV_9B_1.0'"),
        ({"id_token": "   ", "batch_size": 0}, r"--batch-size 0: must be at least 1"),
    ):
        with pytest.raises(ConfigError, match=pattern):
            run_pipeline("clips", "64x64x9", template, 4, work_dir=tmp_path, **kwargs)
    with pytest.raises(ConfigError, match=r"--resolution-buckets: no resolution bucket given; give one or more WIDTHxHEIGHTxFRAMES"):
        run_pipeline("clips", " ; ", template, 4, work_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"--captioner: '.*clips_raw' is not a Qwen2.5-VL model folder"):
        run_pipeline("clips", "64x64x9", template, 4, work_dir=tmp_path, captioner_model=str(tmp_path / "clips_raw"))
    with pytest.raises(ConfigError, match=r"BASENAME 'a/clips': give the dataset's name, not a path"):
        run_pipeline("a/clips", "64x64x9", template, 4, work_dir=tmp_path)
    assert not (tmp_path / "clips_scenes").exists()
