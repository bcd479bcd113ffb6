"""The ComfyUI node pack, run as plain Python classes on nodes/comfy.py's fallback path (no ComfyUI needed).

Real media, the real tiny models and a real `accelerate launch` training child. The only stand-ins: ComfyUI's Cancel
button is simulated through ``nodes.comfy.interrupt_hook`` (the fallback's interrupt seam), and the Hugging Face Hub
is tests/test_hub.py's local fake server (this machine has no network).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import typing
import weakref
from pathlib import Path

import pytest

from ltx_train_lib import jobs
from ltx_train_lib.events import read_events
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, comfy
from nodes import types as T
from tests.conftest import make_precomputed
from tests.test_hub import REPO_ID, fake_hub, lora_output  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


def node(name: str):
    return NODE_CLASS_MAPPINGS[f"LTXTrainer_{name}"]


def widget_defaults(cls) -> dict:
    """Every widget's default, as the editor would fill a fresh node."""
    out = {}
    spec = cls.INPUT_TYPES()
    for cat in ("required", "optional"):
        for name, (kind, opts) in spec.get(cat, {}).items():
            if isinstance(kind, list):
                out[name] = opts.get("default", kind[0])
            elif kind in WIDGET_TYPES:
                out[name] = opts["default"]
    return out


@pytest.fixture(autouse=True)
def _no_interrupt():
    comfy.clear_interrupt()
    comfy.interrupt_hook = None
    yield
    comfy.clear_interrupt()
    comfy.interrupt_hook = None


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(comfy.ROOT_ENV, str(tmp_path / "comfy"))
    return tmp_path / "comfy"


# ------------------------------------------------------------------------------------------------ pack structure


def test_importing_the_pack_is_light_and_fast():
    """ComfyUI's way: spec_from_file_location on the pack's __init__.py under a path-derived module name."""
    probe = textwrap.dedent(
        f"""
        import importlib.util, json, sys, time
        preload = sys.argv[1] == "comfy"
        if preload:  # what ComfyUI has imported before it loads custom nodes (no torch: measured separately)
            import aiohttp, asyncio, yaml, logging, json, uuid, pydantic  # noqa
        t0 = time.perf_counter()
        spec = importlib.util.spec_from_file_location(
            "_x_pack_x_ltx", {str(ROOT / "__init__.py")!r}, submodule_search_locations=[{str(ROOT)!r}])
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        took = time.perf_counter() - t0
        heavy = [m for m in ("torch", "diffusers", "transformers", "accelerate", "peft", "av", "cv2") if m in sys.modules]
        print(json.dumps({{"took": took, "heavy": heavy, "nodes": sorted(module.NODE_CLASS_MAPPINGS),
                          "web": module.WEB_DIRECTORY}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    results = {}
    for mode in ("cold", "comfy"):
        out = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, cwd="/", env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\npack import: {results['cold']['took'] * 1000:.0f} ms cold (incl. aiohttp for the monitor routes), "
        f"{results['comfy']['took'] * 1000:.0f} ms added to a ComfyUI start-up"
    )
    for r in results.values():
        assert r["heavy"] == []
        assert len(r["nodes"]) == 12 and r["web"] == "./web"
    assert results["comfy"]["took"] < 2.0  # sanity bound only; the figure is printed above


def test_node_ids_categories_and_outputs():
    expected = {"LoadVideos", "SplitScenes", "QwenCaption", "PrecomputeLatents_v2", "PrecomputeOptions", "TrainLoRA_v2",
                "TrainingOptions", "ConvertComfy", "PushToHub", "CompareCheckpoints",
                "PrecomputeLatents", "TrainLoRA"}  # the last two: the first release's all-settings nodes
    assert set(NODE_CLASS_MAPPINGS) == {f"LTXTrainer_{n}" for n in expected}
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)
    for name, cls in NODE_CLASS_MAPPINGS.items():
        assert cls.CATEGORY.startswith("LTX Trainer/"), name
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS), name
        assert cls.DESCRIPTION
    for sink in ("TrainLoRA", "TrainLoRA_v2", "ConvertComfy", "PushToHub", "CompareCheckpoints"):
        assert node(sink).OUTPUT_NODE is True
    # The all-settings nodes stay loadable for saved workflows but are hidden from the node search.
    deprecated = {n for n, cls in NODE_CLASS_MAPPINGS.items() if getattr(cls, "DEPRECATED", False)}
    assert deprecated == {"LTXTrainer_PrecomputeLatents", "LTXTrainer_TrainLoRA"}
    assert all("legacy" in NODE_DISPLAY_NAME_MAPPINGS[n] for n in deprecated)
    # Node search: newer ComfyUI sends SEARCH_ALIASES as object_info's search_aliases (server.py node_info); older
    # versions ignore the attribute. Lower-case phrases, no repeats, none a copy of the display name.
    for name, cls in NODE_CLASS_MAPPINGS.items():
        aliases = cls.SEARCH_ALIASES
        if name in deprecated:
            assert aliases == [], name  # not to be found
            continue
        assert isinstance(aliases, list) and 4 <= len(aliases) <= 10, name
        assert all(isinstance(a, str) and a == a.strip().lower() and a for a in aliases), name
        assert len(set(aliases)) == len(aliases), name
        assert NODE_DISPLAY_NAME_MAPPINGS[name].lower() not in aliases, name
    assert "train lora" in node("TrainLoRA_v2").SEARCH_ALIASES and "hugging face" in node("PushToHub").SEARCH_ALIASES
    # The graph connects only in valid ways: each custom type has exactly one kind of producer.
    producers: dict[str, set[str]] = {}
    for name, cls in NODE_CLASS_MAPPINGS.items():
        for t in cls.RETURN_TYPES:
            producers.setdefault(t, set()).add(name)
    assert producers[T.CAPTIONS] == {"LTXTrainer_QwenCaption"}
    assert producers[T.DATASET] == {"LTXTrainer_PrecomputeLatents_v2", "LTXTrainer_PrecomputeLatents"}
    assert producers[T.LORA] == {"LTXTrainer_TrainLoRA_v2", "LTXTrainer_TrainLoRA"}
    assert producers[T.TRAIN_OPTIONS] == {"LTXTrainer_TrainingOptions"}
    assert producers[T.PRECOMPUTE_OPTIONS] == {"LTXTrainer_PrecomputeOptions"}
    assert producers[T.VIDEOS] == {"LTXTrainer_LoadVideos", "LTXTrainer_SplitScenes"}
    assert node("TrainLoRA").INPUT_TYPES()["required"]["dataset"][0] == T.DATASET
    assert node("PrecomputeLatents").INPUT_TYPES()["optional"]["captions"][0] == T.CAPTIONS
    assert node("CompareCheckpoints").INPUT_TYPES()["required"]["lora"][0] == T.LORA


def test_every_input_has_a_tooltip_and_no_token_widget():
    for name, cls in NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        for cat in ("required", "optional"):
            for inp, (kind, opts) in spec.get(cat, {}).items():
                assert isinstance(opts.get("tooltip"), str) and len(opts["tooltip"]) > 10, f"{name}.{inp}"
                assert inp.lower() not in ("token", "hf_token", "api_key", "password"), f"{name}.{inp}: secrets never go into widgets"
                if kind in ("INT", "FLOAT"):
                    assert opts["min"] <= opts["default"] <= opts["max"], f"{name}.{inp}"
                if isinstance(kind, list):
                    assert opts["default"] in kind, f"{name}.{inp}"
                # The editor adds a "control after generate" widget (default: randomize) to INTs with these names,
                # which shifts widgets_values and would change a training seed, i.e. the job, on every run.
                assert inp not in ("seed", "noise_seed"), f"{name}.{inp}"


def test_train_widget_defaults_are_the_schema_defaults(tmp_path):
    """Every TrainLoRA widget starts at the schema default, except the documented node overrides
    (nodes/train.py NODE_DEFAULTS: a fresh node that trains the 2B model on a 24 GB GPU)."""
    from ltx_train_lib import config as C
    from ltx_train_lib.errors import ConfigError
    from nodes import train

    spec = node("TrainLoRA").INPUT_TYPES()["required"]
    overrides = train.NODE_DEFAULTS
    assert set(overrides) <= set(spec), "NODE_DEFAULTS names a widget the node does not have"
    for widget, section, field, _ in train._schema_fields():
        kind, opts = spec[widget]
        info = section.model_fields[field]
        assert opts["tooltip"].startswith(info.description), widget
        schema_default = info.default_factory() if info.default_factory else info.default
        if isinstance(schema_default, list):
            schema_default = ", ".join(schema_default) if field != "prompts" else "\n".join(schema_default)
        expected = 0 if schema_default is None and kind in ("INT", "FLOAT") else schema_default
        if schema_default is None and kind == "STRING":
            expected = ""  # an unset text field (e.g. target_modules: the family's default) is an empty box
        if isinstance(kind, list) and expected is None:
            expected = kind[0]
        if widget in overrides:
            assert overrides[widget] != expected, f"{widget}: the override equals the schema default; drop it"
            expected = overrides[widget]
        assert opts["default"] == expected, widget
        for m in info.metadata:  # ranges come from ge/gt/le of the same field
            if getattr(m, "le", None) is not None:
                assert opts["max"] == m.le, widget
    assert spec["rank"][1]["min"] == 1 and spec["dropout"][1]["max"] == 1.0
    assert spec["validation_interval"][1]["min"] == 0  # 0 = off (None)
    dims = list(C.ValidationConfig.model_fields["video_dims"].default)
    for i, name in enumerate(train._DIM_NAMES):
        dims[i] = overrides.get(name, dims[i])
    assert [spec[n][1]["default"] for n in train._DIM_NAMES] == dims
    assert spec["optimizer_type"][0] == ["adamw", "adamw8bit"]
    assert spec["model"][1]["default"] == overrides["model"] and overrides["model"] in spec["model"][0]
    # The documented fresh node: the 2B model, a few hundred steps, small and rare validation videos, no compile.
    assert overrides["model"].startswith("LTXV_2B_") and 100 <= overrides["steps"] <= 1000
    assert tuple(spec[n][1]["default"] for n in train._DIM_NAMES) == (512, 320, 49)
    assert spec["compile_with_inductor"][1]["default"] is False

    # A config made from untouched widgets is the schema's default config in every field the node exposes, but the
    # overridden ones.
    ds = T.PrecomputedSet(tmp_path, None, "LTXV_13B_097_DEV", ("64x64x9",), 1, "x")
    cfg = C.config_from_dict(train.build_config(ds, widget_defaults(node("TrainLoRA"))))
    reference = C.TrainerConfig(data=C.DataConfig(preprocessed_data_root=str(tmp_path)), lora=C.LoraConfig())
    for widget, section, field, _ in train._schema_fields():
        key = train._section_key(section) if section is not C.TrainerConfig else None
        got = getattr(getattr(cfg, key), field) if key else getattr(cfg, field)
        want = getattr(getattr(reference, key), field) if key else getattr(reference, field)
        assert got == overrides.get(widget, want), f"{key}.{field}"
    assert cfg.validation.video_dims == tuple(dims)
    # The fixed default model, not the dataset's (a 13B dataset's latents fit: 0.9.5+ releases share the VAE).
    assert cfg.model.model_source == "LTXV_2B_0.9.6_DEV"
    old = T.PrecomputedSet(tmp_path, None, "LTXV_2B_0.9.1", ("64x64x9",), 1, "x")
    with pytest.raises(ConfigError, match=r"TrainLoRA.model: 'LTXV_2B_0.9.6_DEV' cannot train on this dataset: .*"
                                          r"'LTXV_2B_0.9.1'.*pick '\(same as dataset\)'"):
        train.build_config(old, widget_defaults(node("TrainLoRA")))
    same = train.build_config(old, {**widget_defaults(node("TrainLoRA")), "model": train.FROM_DATASET})
    assert same["model"]["model_source"] == "LTXV_2B_0.9.1"


def test_precompute_widgets_derive_from_the_schema(tmp_path):
    """As the training widgets come from TrainerConfig: every settings widget of PrecomputeLatents is a
    PrecomputeConfig field, with its default, range, choices and description."""
    from ltx_train_lib.errors import ConfigError
    from ltx_train_lib.precompute import PrecomputeConfig
    from nodes import precompute

    spec = node("PrecomputeLatents").INPUT_TYPES()
    required = spec["required"]
    for widget, field, opts in precompute._SCHEMA_WIDGETS:
        kind, got = required[widget]
        info = PrecomputeConfig.model_fields[field]
        assert got["tooltip"].startswith(info.description), widget
        default = info.get_default()
        if isinstance(kind, list):
            assert kind == list(opts.get("choices") or typing.get_args(info.annotation)), widget
            assert got["default"] == (kind[0] if default is None else default), widget
        else:
            assert got["default"] == ("" if default is None else default), widget
        for m in info.metadata:  # ranges come from ge/le of the same field, unless the node states its own
            if getattr(m, "ge", None) is not None and "min" not in opts:
                assert got["min"] == m.ge, widget
    assert required["batch_size"][1]["min"] == 1
    assert required["trigger_word"][1]["tooltip"].startswith(PrecomputeConfig.model_fields["id_token"].description)
    for widget, field in (("dataset", "dataset_file"), ("resolution_buckets", "resolution_buckets"), ("model", "model_source")):
        assert required[widget][1]["tooltip"].startswith(PrecomputeConfig.model_fields[field].description), widget
    for widget, field in (("text_encoder", "text_encoder_path"), ("vae", "vae_path")):
        assert spec["optional"][widget][1]["tooltip"].startswith(PrecomputeConfig.model_fields[field].description)

    # Untouched widgets make the schema's default config in every field the node exposes.
    values = widget_defaults(node("PrecomputeLatents"))
    cfg = precompute.build_config(values, tmp_path / "captions.json", tmp_path / ".precomputed", values["model"])
    reference = PrecomputeConfig(dataset_file=str(tmp_path / "captions.json"), resolution_buckets=values["resolution_buckets"])
    for _, field, _ in precompute._SCHEMA_WIDGETS:
        assert getattr(cfg, field) == getattr(reference, field), field
    assert cfg.model_source == reference.model_source and cfg.output_dir == str(tmp_path / ".precomputed")
    # The trigger word widget is the config's id_token; a bad value names the widget.
    assert precompute.build_config({**values, "trigger_word": " zxq "}, tmp_path, tmp_path, "tiny").id_token == "zxq"
    with pytest.raises(ConfigError, match=r"PrecomputeLatents.resolution_buckets: resolution bucket '64x64x10'"):
        precompute.build_config({**values, "resolution_buckets": "64x64x10"}, tmp_path, tmp_path, "tiny")
    with pytest.raises(ConfigError, match="PrecomputeLatents.batch_size 0: must be at least 1"):
        precompute.build_config({**values, "batch_size": 0}, tmp_path, tmp_path, "tiny")


# ------------------------------------------------------------------------------------ compact nodes + options


@pytest.mark.parametrize(("compact", "options", "legacy", "shown"), [
    ("TrainLoRA_v2", "TrainingOptions", "TrainLoRA",
     ["model", "steps", "learning_rate", "rank", "alpha", "validation_prompts", "validation_interval", "memory_budget_gb"]),
    ("PrecomputeLatents_v2", "PrecomputeOptions", "PrecomputeLatents", ["dataset", "resolution_buckets", "model", "trigger_word"]),
])
def test_compact_nodes_show_the_common_settings_and_their_options_nodes_the_rest(compact, options, legacy, shown):
    """Every setting of the all-settings node is on exactly one of the compact node and its options node, with the
    same widget spec (type, default, range, tooltip from the schema) and, on the options node, in the same order."""
    full = node(legacy).INPUT_TYPES()
    full = {k: v for cat in ("required", "optional") for k, v in full.get(cat, {}).items()
            if isinstance(v[0], list) or v[0] in WIDGET_TYPES}
    small = node(compact).INPUT_TYPES()
    rest = node(options).INPUT_TYPES()["required"]
    widgets = [k for k, (kind, _) in small["required"].items() if isinstance(kind, list) or kind in WIDGET_TYPES]
    assert [w for w in widgets if w != "trigger_word" or compact.startswith("Precompute")] == shown
    assert small["optional"]["options"][0] == node(options).RETURN_TYPES[0]
    assert set(shown).isdisjoint(rest) and set(shown) | set(rest) == set(full)
    assert list(rest) == [k for k in full if k not in shown]
    assert all(rest[k] == full[k] for k in rest)
    same = [k for k in shown if k != "validation_prompts"]  # its tooltip adds the [trigger] placeholder
    assert all(small["required"][k] == full[k] for k in same)
    assert len(widgets) <= 10  # fits on screen at the default zoom


def test_compact_train_with_options_builds_the_all_settings_config(tmp_path):
    from nodes import train

    ds = T.PrecomputedSet(tmp_path, None, "tiny", (), 1, "x")  # encoded without a trigger word
    values = {**widget_defaults(node("TrainLoRA")), "model": train.FROM_DATASET, "rank": 8, "warmup_steps": 5,
              "optimizer_type": "adamw", "validation_frames": 17, "extra_config": "optimization:\n  scheduler_params: {power: 2}"}
    options = node("TrainingOptions")().options(**{k: values[k] for k in train.option_widgets()})[0]
    shown = {k: values[k] for k in train.COMPACT_WIDGETS}
    compact = {**train.option_defaults(), **options, **shown, "trigger_word": ""}
    assert train.build_config(ds, compact) == train.build_config(ds, values)
    # no options node: a fresh Training Options node's values
    assert train.option_defaults() == widget_defaults(node("TrainingOptions"))


def test_compact_train_writes_the_trigger_word_into_validation_prompts(tmp_path):
    from ltx_train_lib.errors import ConfigError
    from nodes import train

    ds = T.PrecomputedSet(tmp_path, None, "tiny", (), 1, "x", trigger_word="zxq")
    values = {**train.option_defaults(), **widget_defaults(node("TrainLoRA_v2")), "model": train.FROM_DATASET,
              "validation_prompts": "a cat\n[trigger] style, a dog\nA ZXQ walking\nzxqq"}
    cfg = train.build_config(ds, values)
    assert cfg["validation"]["prompts"] == ["zxq a cat", "zxq style, a dog", "A ZXQ walking", "zxq zxqq"]
    assert cfg["data"]["trigger_word"] == "zxq"
    with pytest.raises(ConfigError, match=r"TrainLoRA.trigger_word: 'abc' is not the trigger word 'zxq' this dataset's "
                                          r"captions were encoded with .* leave it empty"):
        train.build_config(ds, {**values, "trigger_word": "abc"})
    plain = T.PrecomputedSet(tmp_path, None, "tiny", (), 1, "x")  # captions that hold their own token
    cfg = train.build_config(plain, {**values, "trigger_word": "abc"})
    assert cfg["data"]["trigger_word"] == "abc" and cfg["validation"]["prompts"][0] == "abc a cat"
    cfg = train.build_config(plain, values)
    assert "trigger_word" not in cfg["data"] and cfg["validation"]["prompts"][0] == "a cat"
    # the all-settings node keeps the first release's behaviour: prompts as typed
    legacy = {**widget_defaults(node("TrainLoRA")), "model": train.FROM_DATASET, "validation_prompts": "a cat"}
    assert train.build_config(ds, legacy)["validation"]["prompts"] == ["a cat"]


def test_stage_widget_defaults_come_from_the_library():
    from ltx_train_lib.captioning import caption_media
    from ltx_train_lib.config import ModelConfig
    from ltx_train_lib.precompute import preprocess_dataset
    from ltx_train_lib.scenes import SplitSettings
    from nodes.schema_widgets import dataclass_default, param_default

    pre = widget_defaults(node("PrecomputeLatents"))
    assert pre["model"] == ModelConfig.model_fields["model_source"].default
    for widget, param in (("remove_llm_prefixes", "remove_llm_prefixes"), ("decode_videos", "decode_videos"),
                          ("reshape_mode", "reshape_mode"), ("frame_selection", "frame_selection"),
                          ("batch_size", "batch_size"), ("precompute_seed", "seed"), ("vae_tiling", "vae_tiling")):
        assert pre[widget] == param_default(preprocess_dataset, param), widget
    cap = widget_defaults(node("QwenCaption"))
    for widget in ("override", "batch_size", "fps", "max_new_tokens", "use_8bit"):
        assert cap[widget] == param_default(caption_media, widget), widget
    split = widget_defaults(node("SplitScenes"))
    assert split["detector"] == dataclass_default(SplitSettings, "detector")
    assert split["crf"] == dataclass_default(SplitSettings, "crf")
    assert split["threshold"] == 0 and dataclass_default(SplitSettings, "threshold") is None  # 0 = detector default


def test_build_config_maps_widgets_and_names_bad_input(tmp_path):
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.errors import ConfigError
    from nodes import train

    ds = T.PrecomputedSet(tmp_path, None, "tiny", ("64x64x9",), 1, "x")
    values = {
        **widget_defaults(node("TrainLoRA")),
        "model": train.FROM_DATASET,
        "validation_prompts": "a red square\n\n zxq a cat ",
        "target_modules": "to_q,to_v",
        "validation_interval": 0,
        "checkpoint_interval": 5,
        "extra_config": "optimization:\n  scheduler_params: {power: 2}\nvalidation:\n  negative_prompt: ugly",
    }
    cfg = config_from_dict(train.build_config(ds, values))
    assert cfg.validation.prompts == ["a red square", "zxq a cat"]
    assert cfg.lora.target_modules == ["to_q", "to_v"]
    assert cfg.validation.interval is None and cfg.checkpoints.interval == 5
    assert cfg.optimization.scheduler_params == {"power": 2} and cfg.validation.negative_prompt == "ugly"
    assert cfg.data.preprocessed_data_root == str(tmp_path) and cfg.model.model_source == "tiny"
    with pytest.raises(ConfigError, match="extra_config"):
        train.build_config(ds, {**values, "extra_config": "optimization: [unclosed"})
    with pytest.raises(ConfigError, match="training_mode must stay 'lora'"):
        train.build_config(ds, {**values, "extra_config": "model: {training_mode: full}"})
    with pytest.raises(ConfigError, match="validation.video_dims"):
        config_from_dict(train.build_config(ds, {**values, "validation_width": 100}), "TrainLoRA inputs")
    assert train.step_text({"step": 3, "total": 10, "loss": 0.12345, "eta_s": 75}) == "step 3/10  loss 0.1235  ETA 1m15s"


# ------------------------------------------------------------------------------------------- dataset stages


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    """Two raw videos with one cut each in <root>/input/raw (so: 4 scenes); a.mp4 has sound, b.mp4 none."""
    from ltx_train_lib.synthetic import make_scene_video

    base = tmp_path_factory.mktemp("pipeline") / "comfy"
    raw = base / "input" / "raw"
    make_scene_video(raw / "a.mp4", cuts=(20,), num_frames=40, size=(96, 64), crf=28, audio=True)
    make_scene_video(raw / "b.mp4", cuts=(18,), num_frames=36, size=(96, 64), seed=2, crf=28)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(comfy.ROOT_ENV, str(base))
        yield base


@pytest.fixture(scope="module")
def clips(media_root):
    loaded = node("LoadVideos")().load(folder="raw", recursive=True, include_images=False, dataset_name="")
    videos = loaded["result"][0]
    split = node("SplitScenes")().split(videos, **{**widget_defaults(node("SplitScenes")), "crf": 28})
    return loaded, split


def _ui_files(ui: dict, root: Path) -> list[Path]:
    return [root / e["type"] / e["subfolder"] / e["filename"] for e in ui.get("images", [])]


def test_load_videos_and_split_scenes(media_root, clips):
    from ltx_train_lib.media import probe_media

    loaded, split = clips
    videos = loaded["result"][0]
    assert [p.name for p in videos.files] == ["a.mp4", "b.mp4"]
    assert videos.work_dir == media_root / "output" / "ltx_trainer" / "datasets" / "raw"
    assert all(p.is_file() and p.suffix == ".png" for p in _ui_files(loaded["ui"], media_root))
    scenes = split["result"][0]
    assert scenes.stage == "scenes" and scenes.folder == videos.work_dir / "scenes"
    assert [p.name for p in scenes.files] == ["a-Scene-001.mp4", "a-Scene-002.mp4", "b-Scene-001.mp4", "b-Scene-002.mp4"]
    assert [probe_media(p).num_frames for p in scenes.files] == [20, 20, 18, 18]  # cut exactly at the scene change
    assert len(_ui_files(split["ui"], media_root)) == 4 and all(p.is_file() for p in _ui_files(split["ui"], media_root))
    assert "4 clips" in split["ui"]["text"][0]
    assert "sound: 1 of 2 videos; without: b.mp4" in loaded["ui"]["text"][0]
    assert "sound: 2 of 4 clips; without: b-Scene-001.mp4, b-Scene-002.mp4" in split["ui"]["text"][0]
    assert [probe_media(p).has_audio for p in scenes.files] == [True, True, False, False]
    again = node("SplitScenes")().split(videos, **{**widget_defaults(node("SplitScenes")), "crf": 28})
    assert "0 split, 2 already done" in again["ui"]["text"][0]


def test_load_videos_reports_missing_folder_and_tracks_changes(media_root, tmp_path):
    load = node("LoadVideos")
    with pytest.raises(FileNotFoundError, match=r"LoadVideos.folder: 'nope' was not found .*input"):
        load().load(folder="nope", recursive=False, include_images=False, dataset_name="")
    (media_root / "input" / "empty").mkdir(exist_ok=True)
    with pytest.raises(Exception, match="has no videos"):
        load().load(folder="empty", recursive=False, include_images=False, dataset_name="")
    before = load.IS_CHANGED(folder="empty", recursive=False, include_images=False, dataset_name="")
    (media_root / "input" / "empty" / "c.mp4").write_bytes(b"x")
    assert load.IS_CHANGED(folder="empty", recursive=False, include_images=False, dataset_name="") != before
    (media_root / "input" / "empty" / "c.mp4").unlink()


def test_cancel_during_split_keeps_finished_videos(media_root):
    from ltx_train_lib.media import probe_media

    videos = node("LoadVideos")().load(folder="raw", recursive=False, include_images=False, dataset_name="cancelled")["result"][0]
    out = videos.work_dir / "scenes"
    comfy.interrupt_hook = lambda: any(out.glob("*.mp4"))  # Cancel once the first video's clips are in place
    settings = {**widget_defaults(node("SplitScenes")), "crf": 28}
    with pytest.raises(comfy.Interrupted):
        node("SplitScenes")().split(videos, **settings)
    assert sorted(p.name for p in out.glob("*.mp4")) == ["a-Scene-001.mp4", "a-Scene-002.mp4"]
    assert probe_media(out / "a-Scene-001.mp4").num_frames == 20
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    comfy.interrupt_hook = None
    again = node("SplitScenes")().split(videos, **settings)
    assert "1 split, 1 already done" in again["ui"]["text"][0]


@pytest.fixture(scope="module")
def captioned(clips):
    """QwenCaption on the tiny model, with the captioner class wrapped to keep weak references to what it loaded."""
    from ltx_train_lib import captioning

    made: list[tuple[weakref.ref, weakref.ref]] = []

    class Recording(captioning.QwenCaptioner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append((weakref.ref(self), weakref.ref(self._model)))

    scenes = clips[1]["result"][0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(captioning, "QwenCaptioner", Recording)
        values = {**widget_defaults(node("QwenCaption")), "model": "tiny", "max_new_tokens": 12, "batch_size": 2}
        result = node("QwenCaption")().caption(scenes, **values)
    gc.collect()
    return result, made


def test_qwen_caption_writes_captions_and_releases_its_model(captioned, clips):
    result, made = captioned
    record = result["result"][0]
    assert record.count == 4 and record.captions_file.name == "captions.json"
    entries = json.loads(record.captions_file.read_text())
    assert [e["media_path"] for e in entries] == [f"scenes/{p.name}" for p in clips[1]["result"][0].files]
    assert all(e["caption"].strip() for e in entries)
    assert "4 captioned" in result["ui"]["text"][0] and "a-Scene-001.mp4: " in result["ui"]["text"][0]
    assert len(made) == 1
    captioner_ref, model_ref = made[0]
    assert captioner_ref() is None and model_ref() is None  # nothing keeps the model alive after the node


def test_precompute_from_captions_shows_decoded_videos(captioned, media_root):
    record = captioned[0]["result"][0]
    values = {**widget_defaults(node("PrecomputeLatents")), "model": "tiny", "resolution_buckets": "64x64x9",
              "decode_videos": True, "trigger_word": "zxq"}
    out = node("PrecomputeLatents")().precompute(**values, captions=record)
    ds = out["result"][0]
    assert ds.precomputed_dir == record.work_dir / ".precomputed" and ds.samples == 4 and ds.trigger_word == "zxq"
    assert len(list((ds.precomputed_dir / "latents").rglob("*.pt"))) == 4
    assert out["ui"]["animated"] == [True]
    previews = _ui_files(out["ui"], media_root)
    assert len(previews) == 4 and all(p.suffix == ".mp4" and p.is_file() for p in previews)
    again = node("PrecomputeLatents")().precompute(**values, captions=record)["result"][0]
    assert again.fingerprint == ds.fingerprint
    # The compact node with the same settings (the rest from a Precompute Options node) reuses that cache.
    from nodes import precompute

    options = node("PrecomputeOptions")().options(**{k: values[k] for k in precompute.option_widgets()})[0]
    shown = {k: values[k] for k in precompute.COMPACT_WIDGETS}
    compact = node("PrecomputeLatents_v2")().precompute(captions=record, options=options, **shown)
    assert compact["result"][0] == again
    assert "; 0 computed (0 latents, 0 captions); 4 reused from the cache" in compact["ui"]["text"][0]
    changed = node("PrecomputeLatents")().precompute(**{**values, "trigger_word": "qqq"}, captions=record)["result"][0]
    assert changed.fingerprint != ds.fingerprint  # other prompts: a new training job, not a resume


def test_precompute_from_a_dataset_folder_writes_only_to_output(captioned, media_root):
    import shutil

    src = captioned[0]["result"][0].work_dir
    dataset = media_root / "input" / "my_set"
    shutil.copytree(src / "scenes", dataset / "scenes")
    shutil.copy(src / "captions.json", dataset / "captions.json")
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    values = {**widget_defaults(node("PrecomputeLatents")), "model": "tiny", "resolution_buckets": "64x64x9", "dataset": "my_set"}
    ds = node("PrecomputeLatents")().precompute(**values)["result"][0]
    assert ds.precomputed_dir == media_root / "output" / "ltx_trainer" / "datasets" / "my_set" / ".precomputed"
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before  # nothing written into input/
    with pytest.raises(Exception, match="connect 'captions'"):
        node("PrecomputeLatents")().precompute(**{**values, "dataset": ""})


def test_bucket_errors_name_the_resolution_buckets_widget(root, tiny_model_dir):
    """From the node, every bucket problem names PrecomputeLatents.resolution_buckets, never the command line's
    --resolution-buckets (that flag is what the CLI's own messages name)."""
    from PIL import Image

    from ltx_train_lib.errors import ConfigError, DatasetError

    dataset = root / "input" / "stills"
    dataset.mkdir(parents=True)
    Image.new("RGB", (96, 64), (200, 30, 30)).save(dataset / "still.png")
    (dataset / "captions.json").write_text(json.dumps([{"caption": "a red card", "media_path": "still.png"}]))
    values = {**widget_defaults(node("PrecomputeLatents")), "model": "tiny", "dataset": "stills"}
    for bad, problem in ((" ; ", "no resolution bucket given"), ("64x64x10", "the frame count must be 8k+1")):
        with pytest.raises(ConfigError) as info:
            node("PrecomputeLatents")().precompute(**{**values, "resolution_buckets": bad})
        assert str(info.value).startswith("PrecomputeLatents.resolution_buckets: ") and problem in str(info.value)
        assert "--resolution-buckets" not in str(info.value)
    # An image and no 1-frame bucket: the skip reason's advice names the widget.
    with pytest.raises(DatasetError) as info:
        node("PrecomputeLatents")().precompute(**{**values, "resolution_buckets": "64x64x9"})
    message = str(info.value)
    assert "an image needs a bucket with 1 frame" in message and "--resolution-buckets" not in message
    assert 'e.g. PrecomputeLatents.resolution_buckets "64x64x9;64x64x1"' in message
    assert message.endswith("fix the dataset or PrecomputeLatents.resolution_buckets")


class _Server:
    """Stand-in for ComfyUI's PromptServer (no ComfyUI here), with send_progress_text's real signature: 0.3.64 and
    0.33 ``(text, node_id, sid=None)``; later servers ``(text, node_id, prompt_id=None, sid=None)``."""

    def __init__(self, with_prompt_id: bool) -> None:
        self.client_id, self.last_prompt_id, self.sent = "client-that-queued", "prompt-1", []
        if with_prompt_id:
            self.send_progress_text = self._newer

    def send_progress_text(self, text, node_id, sid=None):
        self.sent.append({"text": text, "node_id": node_id, "sid": sid})

    def _newer(self, text, node_id, prompt_id=None, sid=None):
        self.sent.append({"text": text, "node_id": node_id, "sid": sid, "prompt_id": prompt_id})


@pytest.mark.parametrize("with_prompt_id", [False, True])
def test_progress_text_goes_to_the_client_that_queued_the_prompt(monkeypatch, with_prompt_id):
    """Without a sid ComfyUI broadcasts the text to every open editor, and the frontend shows it on the node with
    that id in whatever workflow it displays; with the queuing client's sid only that editor gets it."""
    server = _Server(with_prompt_id)
    monkeypatch.setattr(comfy, "_server", lambda: server)
    comfy.progress_text("step 1/2", "7")
    expected = {"text": "step 1/2", "node_id": "7", "sid": "client-that-queued"}
    assert server.sent == [{**expected, "prompt_id": "prompt-1"} if with_prompt_id else expected]


def test_train_live_text_stays_in_the_workflow_that_queued_it(monkeypatch):
    """Queued from the editor (a workflow id), the live line reaches only the node's workflow-keyed monitor through
    ltx_trainer.event; ComfyUI's progress text would land on the same node id of another open workflow. A prompt
    without a workflow (an API client) gets the progress text."""
    from nodes import train

    texts, sent = [], []
    monkeypatch.setattr(comfy, "progress_text", lambda text, node_id: texts.append((node_id, text)))
    monkeypatch.setattr(comfy, "send_event", lambda event, data: sent.append((event, data)))

    class Job:
        id = "job1"

    step = {"event": "step", "step": 2, "total": 10, "loss": 0.5, "eta_s": 8}
    key = train.monitor_node_key({"workflow": {"id": "wf-a"}}, "7")
    assert key == "wf-a:7"
    train.TrainLoRA()._on_event(Job(), step, comfy.Progress(10), "7", key)
    assert texts == [] and sent == [("ltx_trainer.event", {"job_id": "job1", "node_id": "wf-a:7", "event": step})]
    train.TrainLoRA()._on_event(Job(), step, comfy.Progress(10), "7", train.monitor_node_key(None, "7"))
    assert texts == [("7", "step 2/10  loss 0.5000  ETA 8s")]


# ------------------------------------------------------------------------------------------------- jobs layer


def test_job_id_is_stable_and_ignores_output_dir(tmp_path):
    from tests.conftest import tiny_config_dict

    a = tiny_config_dict(tmp_path / "d", tmp_path / "out1")
    b = tiny_config_dict(tmp_path / "d", tmp_path / "out2")
    assert jobs.job_id_for(a) == jobs.job_id_for(b)
    assert jobs.job_id_for(a) != jobs.job_id_for(a, num_processes=2)
    assert jobs.job_id_for(a) != jobs.job_id_for(a, identity="other data")
    assert jobs.job_id_for(a) != jobs.job_id_for(tiny_config_dict(tmp_path / "d", tmp_path / "o", optimization__steps=7))


def test_supervisor_outlives_orphaned_workers():
    """`accelerate launch` dies on SIGTERM before its worker; the worker must not linger as a zombie of a non-reaping
    init (as in this container), or the job's process group would never look finished."""
    cmd = [sys.executable, "-m", "ltx_train_lib.jobs", "supervise", "--", "bash", "-c", "sleep 1 & exit 3"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, start_new_session=True, cwd=str(ROOT))
    assert proc.wait(30) == 3
    assert time.monotonic() - t0 >= 0.9  # it waited for the orphaned `sleep`
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


# ------------------------------------------------------------------------------------------------ training


def _train_values(**overrides) -> dict:
    values = {
        **widget_defaults(node("TrainLoRA")),
        "model": "(same as dataset)", "enable_gradient_checkpointing": False,
        "rank": 4, "alpha": 4, "batch_size": 2, "learning_rate": 1e-3, "scheduler_type": "constant",
        "mixed_precision_mode": "no", "compile_with_inductor": False, "num_dataloader_workers": 0,
        "validation_interval": 0, "checkpoint_interval": 0, "training_seed": 7,
    }
    values.update(overrides)
    return values


def _dataset(folder: Path) -> T.PrecomputedSet:
    from nodes.precompute import dataset_fingerprint

    make_precomputed(folder, [(2, 2, 2)] * 4)
    return T.PrecomputedSet(folder / ".precomputed", None, "tiny", ("64x64x9",), 4, dataset_fingerprint(folder / ".precomputed"), "zxq")


def test_training_error_surfaces_the_childs_message_and_log(root, tmp_path, tiny_model_dir):
    ds = _dataset(tmp_path / "broken")
    (ds.precomputed_dir / "conditions" / "clip_002.mp4.pt").unlink()  # a latent without its caption embedding
    with pytest.raises(jobs.JobFailed) as info:
        asyncio.run(node("TrainLoRA")().train(ds, unique_id="3", **_train_values(steps=3)))
    message = str(info.value)
    assert "have no matching conditions/ file: clip_002.mp4.pt" in message
    assert str(info.value.log_path) in message and info.value.log_path.is_file()
    meta = json.loads((info.value.log_path.parent / "job.json").read_text())
    assert meta["status"] == "failed" and "clip_002" in meta["error"]
    with pytest.raises(ProcessLookupError):
        os.killpg(meta["pgid"], 0)


@pytest.mark.slow
def test_training_cancel_resume_and_finished_requeue(root, tmp_path, tiny_model_dir, monkeypatch):
    sent: list[tuple[str, dict]] = []
    texts: list[str] = []
    monkeypatch.setattr(comfy, "send_event", lambda event, data: sent.append((event, data)))
    monkeypatch.setattr(comfy, "progress_text", lambda text, node_id: texts.append(text))
    from nodes import train

    ds = _dataset(tmp_path / "data")
    # Cancel and resume on the compact node fed by a Training Options node; the finished re-queue on the all-settings
    # node with the same settings: the same job. (The prompt already has the dataset's trigger word, which the
    # compact node would otherwise put in front.)
    values = _train_values(steps=30, job_name="cancel me", validation_prompts="zxq a moving pattern")
    options = node("TrainingOptions")().options(**{k: values[k] for k in train.option_widgets()})[0]
    compact = {"options": options, "trigger_word": "", **{k: values[k] for k in train.COMPACT_WIDGETS}}
    jobs_root = root / "output" / "ltx_trainer" / "jobs"

    def some_steps_done() -> bool:
        return any(e["event"] == "step" and e["step"] >= 2 for f in jobs_root.glob("*/events.jsonl") for e in read_events(f))

    comfy.interrupt_hook = some_steps_done  # ComfyUI's Cancel button, pressed mid-training
    with pytest.raises(comfy.Interrupted):
        asyncio.run(node("TrainLoRA_v2")().train(ds, unique_id="7", **compact))
    comfy.interrupt_hook = None
    (job_dir,) = list(jobs_root.iterdir())
    meta = json.loads((job_dir / "job.json").read_text())
    assert meta["status"] == "cancelled" and meta["name"] == "cancel me" and meta["node_id"] == "7"
    with pytest.raises(ProcessLookupError):  # every process of the job's group is gone
        os.killpg(meta["pgid"], 0)
    cancelled = [e for e in read_events(job_dir / "events.jsonl") if e["event"] == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["reason"] == "SIGTERM"
    stop_step = cancelled[0]["step"]
    assert 2 <= stop_step < 30 and Path(cancelled[0]["checkpoint"]).is_dir()
    assert not (job_dir / "lora_weights.safetensors").exists()
    assert any(t.startswith("step 2/30  loss ") and "ETA" in t for t in texts)
    forwarded = [d for e, d in sent if e == "ltx_trainer.event"]
    assert forwarded and all(d["job_id"] == job_dir.name and d["node_id"] == "7" for d in forwarded)
    assert {"started", "step"} <= {d["event"]["event"] for d in forwarded}
    assert ("ltx_trainer.jobs", {}) in sent

    # Re-queue: the same job folder, resumed from the checkpoint, to the end.
    out = asyncio.run(node("TrainLoRA_v2")().train(ds, unique_id="7", **compact))
    lora, loss = out["result"]
    assert lora.job_dir == job_dir and lora.lora.is_file() and lora.lora_comfy.is_file() and lora.steps == 30
    events = read_events(job_dir / "events.jsonl")
    started = [e for e in events if e["event"] == "started"]
    assert len(started) == 2 and started[-1]["step"] == stop_step and started[-1]["resumed_from"] == cancelled[0]["checkpoint"]
    after = [e["step"] for e in events[events.index(started[-1]):] if e["event"] == "step"]
    assert after == list(range(stop_step + 1, 31))
    assert len(loss["loss"]) == 30
    assert json.loads((job_dir / "job.json").read_text())["status"] == "done"
    assert "LoRA health: ok at step 30 (" in out["ui"]["text"][0]  # the trainer's scan, from the file's header

    # Third queue, from the all-settings node: finished, so the result comes back at once and nothing is spawned.
    def no_spawn(*args, **kwargs):
        raise AssertionError("a finished job must not start a process")

    monkeypatch.setattr(subprocess, "Popen", no_spawn)
    t0 = time.monotonic()
    third = asyncio.run(node("TrainLoRA")().train(ds, unique_id="7", **values))
    assert time.monotonic() - t0 < 10
    assert third["result"][0] == lora and third["result"][1] == loss


def test_an_already_running_job_is_not_started_twice(root, tmp_path):
    from tests.conftest import tiny_config_dict

    cfg = tiny_config_dict(tmp_path / "d", tmp_path / "o")
    make_precomputed(tmp_path / "d", [(2, 2, 2)])
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        folder = root / "jobs" / jobs.job_id_for(cfg)
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(json.dumps({"status": "running", "pgid": sleeper.pid, "name": "first"}))
        with pytest.raises(jobs.JobError, match="already running"):
            jobs.start_job(cfg, root / "jobs", name="second")
    finally:
        os.killpg(sleeper.pid, signal.SIGKILL)
        sleeper.wait()


def test_a_job_folder_that_cannot_be_written_is_one_message(root, tmp_path):
    from tests.conftest import tiny_config_dict

    cfg = tiny_config_dict(tmp_path / "d", tmp_path / "o")
    make_precomputed(tmp_path / "d", [(2, 2, 2)])
    folder = root / "jobs" / jobs.job_id_for(cfg)
    (folder / "training_config.yaml").mkdir(parents=True)  # something in the way, as a full or read-only disk would be
    with pytest.raises(jobs.JobError, match="cannot write its training config in .*check that the ComfyUI output"):
        jobs.start_job(cfg, root / "jobs", name="x")
    assert not (folder / "job.json").exists() and not (folder / "train.log").exists()  # nothing was started


def test_a_launcher_that_cannot_start_fails_with_its_reason(root, tmp_path):
    from tests.conftest import tiny_config_dict

    cfg = tiny_config_dict(tmp_path / "d", tmp_path / "o")
    make_precomputed(tmp_path / "d", [(2, 2, 2)])
    job = jobs.start_job(cfg, root / "jobs", name="x", launch_command=[str(tmp_path / "no-such-accelerate")])
    assert job.wait(timeout=60) == jobs.FAILED
    message = job.failure_message(with_log=False)
    assert "cannot start" in message and "no-such-accelerate" in message and "No such file" in message
    assert "Traceback" not in job.log_tail()
    assert json.loads((job.dir / "job.json").read_text())["status"] == "failed"


# --------------------------------------------------------------------------------------------------- export


def _lora_record(folder: Path, alpha: int = 8, seed: int = 0) -> T.LoraResult:
    import torch

    from ltx_train_lib import export

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for block in range(2):
        for proj in ("to_q", "to_k"):
            sd[f"transformer_blocks.{block}.attn1.{proj}.lora_A.weight"] = torch.randn(4, 32, generator=g)
            sd[f"transformer_blocks.{block}.attn1.{proj}.lora_B.weight"] = torch.randn(32, 4, generator=g)
    d, c = export.save_lora_pair(sd, folder, rank=4, alpha=alpha, metadata={"base_model": "tiny"})
    return T.LoraResult("job", folder, d, c, 10, "tiny", 4, alpha)


def test_convert_comfy_saves_into_loras_atomically_and_never_clobbers(root, tmp_path):
    convert = node("ConvertComfy")()
    rec = _lora_record(tmp_path / "job1")
    out = convert.convert(rec, "my/ltx lora", False, 1.0)
    model, name = out["result"]
    target = root / "models" / "loras" / "my" / "ltx_lora.safetensors"
    assert model is None and name == "my/ltx_lora.safetensors"
    assert target.read_bytes() == rec.lora_comfy.read_bytes()
    assert name in comfy.model_files("loras")
    assert "unchanged" in convert.convert(rec, "my/ltx lora", False, 1.0)["ui"]["text"][0]
    other = _lora_record(tmp_path / "job2", seed=1)
    with pytest.raises(FileExistsError, match="lora_name: 'my/ltx_lora.safetensors' already exists"):
        convert.convert(other, "my/ltx lora", False, 1.0)
    assert target.read_bytes() == rec.lora_comfy.read_bytes()  # the existing LoRA is untouched
    convert.convert(other, "my/ltx lora", True, 1.0)
    assert target.read_bytes() == other.lora_comfy.read_bytes()
    other.lora_comfy.unlink()  # made again from the diffusers file when missing
    assert convert.convert(other, "../../escape", False, 1.0)["result"][1] == "escape.safetensors"
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(RuntimeError, match="ConvertComfy.model: .* needs ComfyUI"):
        convert.convert(rec, "x", False, 1.0, model=object())


def test_unpatched_keys_are_named():
    from nodes.export import unpatched_lora_keys

    keys = ["diffusion_model.a.lora_A.weight", "diffusion_model.a.lora_B.weight", "diffusion_model.a.alpha",
            "diffusion_model.b.lora_A.weight", "diffusion_model.b.lora_B.weight"]
    key_map = {"diffusion_model.a": "diffusion_model.a.weight", "diffusion_model.b": "diffusion_model.b.weight"}
    assert unpatched_lora_keys(keys, key_map, ["diffusion_model.a.weight", "diffusion_model.b.weight"]) == []
    assert unpatched_lora_keys(keys, key_map, ["diffusion_model.a.weight"]) == keys[3:]
    assert unpatched_lora_keys(keys, {}, []) == sorted(keys)


class _FakeComfyLora:
    """Stand-in for comfy.lora with the calls ConvertComfy makes: the key map names each LoRA module of the model
    (``diffusion_model.<module>`` -> ``diffusion_model.<module>.weight``), load_lora pairs A/B the way ComfyUI does."""

    def __init__(self, modules: list[str]) -> None:
        self.modules, self.calls = modules, []

    def model_lora_keys_unet(self, model, key_map):
        self.calls.append("model_lora_keys_unet")
        key_map.update({f"diffusion_model.{m}": f"diffusion_model.{m}.weight" for m in self.modules})
        return key_map

    def load_lora(self, sd, key_map, log_missing=True):
        self.calls.append(("load_lora", log_missing))
        return {t: ("lora", sd[f"{p}.lora_A.weight"]) for p, t in key_map.items() if f"{p}.lora_A.weight" in sd}


class _FakeModelPatcher:
    """Stand-in for a ComfyUI MODEL (ModelPatcher): ``.model.state_dict()`` names its weights, add_patches accepts
    the patches whose weight exists, as ComfyUI's does."""

    def __init__(self, weights: list[str]) -> None:
        import types

        self._weights = weights
        self.model = types.SimpleNamespace(state_dict=lambda: dict.fromkeys(weights))
        self.patches: dict = {}

    def clone(self):
        return _FakeModelPatcher(self._weights)

    def add_patches(self, patches, strength):
        accepted = [k for k in patches if k in self._weights]
        self.patches.update({k: strength for k in accepted})
        return accepted


def test_convert_comfy_checks_health_and_comfyuis_key_map(root, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    convert = node("ConvertComfy")()
    rec = _lora_record(tmp_path / "job1")
    modules = [f"transformer_blocks.{b}.attn1.{p}" for b in range(2) for p in ("to_q", "to_k")]
    fake_lora = _FakeComfyLora(modules)
    weights = [f"diffusion_model.{m}.weight" for m in modules]
    # ComfyUI's modules as nodes/comfy.py would import them inside ComfyUI
    monkeypatch.setitem(comfy._modules, "comfy.lora", fake_lora)
    monkeypatch.setitem(comfy._modules, "comfy.lora_convert", None)
    monkeypatch.setitem(comfy._modules, "comfy.utils", type("U", (), {"load_torch_file": staticmethod(
        lambda path, safe_load=True: load_file(path))}))
    out = convert.convert(rec, "checked", False, 0.5, model=_FakeModelPatcher(weights))
    text = out["ui"]["text"][0]
    assert "LoRA health: ok (12 tensors, 4 modules, no NaN/Inf)" in text  # rank 4, alpha 8: 4 alpha tensors too
    assert "ComfyUI key check: all 12 keys load (4 modules)" in text and "4 modules patched at strength 0.5" in text
    assert out["result"][0].patches == dict.fromkeys(weights, 0.5)
    # the check alone patches nothing, and asks ComfyUI not to log what it reports itself
    sd = load_file(str(rec.lora_comfy))
    check = comfy.lora_load_check(_FakeModelPatcher(weights[:3]), sd)
    assert check.not_loaded == sorted(k for k in sd if ".to_k." in k and "blocks.1" in k) and ("load_lora", False) in fake_lora.calls
    # a model that lacks a module: named, and the LoRA is not applied
    with pytest.raises(RuntimeError, match=r"3 of 12 keys of checked.safetensors patched no weight"):
        convert.convert(rec, "checked", False, 1.0, model=_FakeModelPatcher(weights[1:]))
    # a LoRA holding NaN never reaches the loras folder
    bad = _lora_record(tmp_path / "job2", seed=1)
    sd = load_file(str(bad.lora_comfy))
    sd["diffusion_model.transformer_blocks.1.attn1.to_q.lora_B.weight"][0, 0] = float("inf")
    save_file(sd, str(bad.lora_comfy))
    with pytest.raises(Exception, match=r"LoRA health check failed: 1 tensor\(s\) hold NaN/Inf.*blocks.1.attn1.to_q.lora_B"):
        convert.convert(bad, "bad", False, 1.0)
    assert not (root / "models" / "loras" / "bad.safetensors").exists()


def test_push_to_hub_uploads_once_with_the_env_token(fake_hub, lora_output):  # noqa: F811
    push = node("PushToHub")()
    rec = T.LoraResult("job", lora_output, lora_output / "lora_weights.safetensors",
                       lora_output / "lora_weights_comfy.safetensors", 10, "LTXV_2B_0.9.6_DEV", 4, 8, trigger_word="zxq")
    out = push.push(rec, REPO_ID, True, "", fake_hub.base_url, False)
    assert out["result"][0] == f"{fake_hub.base_url}/{REPO_ID}" and len(fake_hub.commits) == 1
    assert "zxq" in fake_hub.commits[0]["README.md"].decode()
    again = push.push(rec, REPO_ID, True, "", fake_hub.base_url, False)
    assert "already uploaded" in again["ui"]["text"][0] and len(fake_hub.commits) == 1
    push.push(rec, REPO_ID, True, "", fake_hub.base_url, True)
    assert len(fake_hub.commits) == 2 and fake_hub.unexpected == []


def test_push_to_hub_without_token_says_how_to_log_in(lora_output, monkeypatch, tmp_path):  # noqa: F811
    import huggingface_hub.constants

    from ltx_train_lib.hub import HubError

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "none" / "token"))
    rec = T.LoraResult("job", lora_output, lora_output / "lora_weights.safetensors", None, 10, "x", 4, 8)
    with pytest.raises(HubError, match="HF_TOKEN"):
        node("PushToHub")().push(rec, REPO_ID, False, "", "http://127.0.0.1:9", False)
    with pytest.raises(HubError, match="repo_id: empty"):
        node("PushToHub")().push(rec, "  ", False, "", "", False)


def test_monitor_node_key_scopes_node_ids_by_workflow():
    from nodes.train import monitor_node_key

    assert monitor_node_key({"workflow": {"id": "wf-1", "nodes": []}}, "3") == "wf-1:3"
    assert monitor_node_key({"workflow": {"nodes": []}}, "3") == "3"  # API prompts carry no workflow id
    assert monitor_node_key(None, "3") == "3"
    assert monitor_node_key({"workflow": {"id": "wf-1"}}, None) is None


def test_train_node_plans_memory_and_refuses_a_run_its_budget_cannot_hold(root, tmp_path, tiny_model_dir):
    """memory_budget_gb (last widget, from MemoryConfig.budget_gb): the node plans before spawning and refuses with
    the trainer's message; no job is started."""
    from ltx_train_lib.config import MemoryConfig, config_from_dict
    from ltx_train_lib.errors import ConfigError
    from nodes import train

    spec = node("TrainLoRA").INPUT_TYPES()["required"]
    assert list(spec)[-1] == "memory_budget_gb"  # after every older widget: saved workflows keep their values
    kind, opts = spec["memory_budget_gb"]
    assert kind == "FLOAT" and opts["default"] == 0 and opts["tooltip"].startswith(MemoryConfig.model_fields["budget_gb"].description)
    ds = _dataset(tmp_path / "ds")
    with pytest.raises(ConfigError, match=r"memory.budget_gb: the run does not fit in 0\.5 GB"):
        asyncio.run(node("TrainLoRA")().train(ds, unique_id="4", **_train_values(steps=2, memory_budget_gb=0.5)))
    jobs_root = root / "output" / "ltx_trainer" / "jobs"
    assert not jobs_root.exists() or not any(jobs_root.iterdir())
    # A budget that fits: the plan's line for the node, the budget kept in the job's config.
    cfg = config_from_dict(train.build_config(ds, _train_values(steps=2, memory_budget_gb=8.0)))
    assert cfg.memory.budget_gb == 8.0
    line = train.memory_check(cfg)
    assert line.startswith("memory budget 8.0 GB") and "as configured" in line
