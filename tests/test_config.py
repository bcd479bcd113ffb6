"""The config schema: reference YAMLs validate unchanged, bad ones name the key and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltx_train_lib.config import TrainerConfig, config_from_dict, load_config
from ltx_train_lib.errors import ConfigError

REF = Path(__file__).parent / "data" / "reference_configs"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.name for p in REF.glob("*.yaml")))
def test_reference_configs_validate_unchanged(name: str) -> None:
    cfg = load_config(REF / name)
    raw = yaml.safe_load((REF / name).read_text())
    dumped = cfg.model_dump(mode="json")
    # every value written in the file survives validation as written
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                got = dumped[section][key]
                if isinstance(got, float):
                    value = float(value)  # YAML 1.1 reads "2e-4" as a string; pydantic converts it, as the reference did
                assert (list(got) if isinstance(got, tuple) else got) == value, f"{section}.{key}"
        else:
            assert dumped[section] == values


def test_bundled_configs_validate() -> None:
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    for path in configs:
        text = path.read_text().replace("[BASENAME]", "demo").replace("[RANK]", "16")
        config_from_dict(yaml.safe_load(text), str(path))


def _base() -> dict:
    return {"model": {"model_source": "tiny"}, "lora": {"rank": 8, "alpha": 8}, "data": {"preprocessed_data_root": "/x"}}


def test_unknown_key_names_dotted_path_and_suggestion() -> None:
    data = _base()
    data["lora"]["rnak"] = 4
    with pytest.raises(ConfigError) as exc:
        config_from_dict(data, "my.yaml")
    msg = str(exc.value)
    assert "my.yaml" in msg and "lora.rnak: unknown key" in msg and "did you mean 'rank'" in msg


def test_unknown_top_level_key_from_stale_docs() -> None:
    data = _base()
    data["quantization"] = {"load_text_encoder_in_8bit": True}
    with pytest.raises(ConfigError, match=r"quantization: unknown key"):
        config_from_dict(data)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"lora": {"rank": 0, "alpha": 8}}, "rank must be a positive integer"),
        ({"lora": {"rank": -4, "alpha": 8}}, "rank must be a positive integer"),
        ({"lora": None}, "the 'lora' section is missing"),
        ({"model": {"model_source": "LTXV_2B_0.9.4"}}, "unknown model version 'LTXV_2B_0.9.4'"),
        ({"validation": {"prompts": ["a", "b"], "images": ["x.png"]}}, "one image per prompt"),
        ({"validation": {"video_dims": [700, 480, 161]}}, "validation.video_dims: width and height must be positive multiples of 32"),
        ({"validation": {"video_dims": [704, 480, 160]}}, r"validation.video_dims: the frame count must be 8k\+1"),
        ({"hub": {"push_to_hub": True}}, "hub_model_id"),
        ({"model": {"model_source": "tiny", "training_mode": "full"}, "acceleration": {"quantization": "int8-quanto"}}, "only allowed with training_mode 'lora'"),
        ({"conditioning": {"mode": "reference_video"}}, "requires validation.reference_videos"),
    ],
)
def test_cross_field_and_value_rules(patch: dict, expected: str) -> None:
    data = _base()
    data.update(patch)
    with pytest.raises(ConfigError, match=expected):
        config_from_dict(data)


def test_missing_data_section() -> None:
    with pytest.raises(ConfigError, match=r"data: required field is missing"):
        config_from_dict({"model": {"model_source": "tiny"}, "lora": {}})


def test_not_yaml_and_not_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n  lora: {")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a YAML mapping"):
        load_config(lst)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_version_names_are_case_insensitive_and_include_098() -> None:
    data = _base()
    data["model"]["model_source"] = "ltxv_13b_098_dev"
    assert config_from_dict(data).model.model_source == "LTXV_13B_098_DEV"


def test_every_field_has_a_description() -> None:
    def walk(model: type) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            for sub in getattr(ann, "__args__", ()) or (ann,):
                if isinstance(sub, type) and hasattr(sub, "model_fields"):
                    walk(sub)

    walk(TrainerConfig)


def test_check_flag_prints_resolved_config_without_loading_a_model(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), str(REF / "ltxv_2b_lora.yaml"), "--check"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    resolved = yaml.safe_load(res.stdout)
    assert resolved["lora"]["rank"] == 32 and resolved["optimization"]["warmup_steps"] == 0
    assert "config OK" in res.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**_base(), "lora": {"rank": 0}}))
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), str(bad), "--check"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "lora.rank" in res.stderr and "positive integer" in res.stderr
