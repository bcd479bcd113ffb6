"""The example workflows (workflows/*.json, ComfyUI UI format 0.4) against the pack's node definitions."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from nodes import NODE_CLASS_MAPPINGS
from nodes import types as T

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def _generator():
    spec = importlib.util.spec_from_file_location("make_workflows", ROOT / "workflows" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


GEN = _generator()
CORE = {k: v for k, v in GEN.CORE_NODES.items() if k not in FRONTEND_ONLY}


def _file(key: str) -> Path:
    """The committed workflow of an example (file names are the readable titles the template browser shows)."""
    return ROOT / "workflows" / f"{GEN.EXAMPLES[key].title}.json"


def _definition(type_: str):
    """(link inputs [(name, type)], widgets [(name, kind, opts)], outputs [(name, type)]) of a node type."""
    if type_ in NODE_CLASS_MAPPINGS:
        cls = NODE_CLASS_MAPPINGS[type_]
        spec = cls.INPUT_TYPES()
        links, widgets = [], []
        for cat in ("required", "optional"):
            for name, (kind, opts) in spec.get(cat, {}).items():
                if isinstance(kind, list) or kind in WIDGET_TYPES:
                    widgets.append((name, kind, opts))
                else:
                    links.append((name, kind))
        return links, widgets, list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES, strict=True))
    core = CORE[type_]
    return core["inputs"], [(w, None, {}) for w in core["widgets"]], core["outputs"]


def _check_value(where: str, kind, opts: dict, value) -> None:
    if isinstance(kind, list):
        assert value in kind, f"{where}: {value!r} is not one of the options"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), f"{where}: {value!r} is not a boolean"
    elif kind == "STRING":
        assert isinstance(value, str), f"{where}: {value!r} is not text"
    elif kind in ("INT", "FLOAT"):
        ok_type = int if kind == "INT" else (int, float)
        assert isinstance(value, ok_type) and not isinstance(value, bool), f"{where}: {value!r} is not {kind}"
        assert opts["min"] <= value <= opts["max"], f"{where}: {value} outside [{opts['min']}, {opts['max']}]"


def _api_values(node: dict) -> dict:
    """The node's widget values by name (what the frontend's graphToPrompt sends)."""
    _, widgets, _ = _definition(node["type"])
    return {name: value for (name, _, _), value in zip(widgets, node["widgets_values"], strict=True)}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


PRE, TRAIN = "LTXTrainer_PrecomputeLatents_v2", "LTXTrainer_TrainLoRA_v2"
OPTION_NODES = {PRE: "LTXTrainer_PrecomputeOptions", TRAIN: "LTXTrainer_TrainingOptions"}


def _values(wf: dict, node: dict) -> dict:
    """What a compact node runs with: its options node's defaults, the connected options node's values (if any),
    then its own widgets — as the node merges them."""
    from nodes import precompute, train

    defaults = {PRE: precompute.option_defaults, TRAIN: train.option_defaults}[node["type"]]()
    nodes = {n["id"]: n for n in wf["nodes"]}
    links = {ln[0]: ln for ln in wf["links"]}
    link = next(i for i in node["inputs"] if i["name"] == "options")["link"]
    options = _api_values(nodes[links[link][1]]) if link is not None else {}
    if link is not None:
        assert nodes[links[link][1]]["type"] == OPTION_NODES[node["type"]]
    return {**defaults, **options, **_api_values(node)}


def test_the_six_examples_are_there_on_the_compact_nodes():
    assert [p.stem for p in WORKFLOWS] == sorted(GEN.WORKFLOWS)
    assert len(WORKFLOWS) == 6
    for path in WORKFLOWS:  # new graphs use the compact nodes; the all-settings ones only load old workflows
        types = {n["type"] for n in load(path)["nodes"]}
        assert not types & {"LTXTrainer_TrainLoRA", "LTXTrainer_PrecomputeLatents"}, path.stem
        for options in {n["type"] for n in load(path)["nodes"]} & set(OPTION_NODES.values()):
            assert all(n["flags"] == {"collapsed": True} for n in load(path)["nodes"] if n["type"] == options)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_matches_node_definitions(path: Path):
    wf = load(path)
    assert wf["version"] == 0.4
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]) and wf["last_node_id"] == max(nodes)
    assert wf["last_link_id"] == max((ln[0] for ln in wf["links"]), default=0)
    for n in wf["nodes"]:
        t = n["type"]
        assert t in NODE_CLASS_MAPPINGS or t in CORE or t in FRONTEND_ONLY, f"node {n['id']}: unknown type {t}"
        assert n.get("mode", 0) in (0, 2, 4)
        if t in FRONTEND_ONLY:
            continue
        links, widgets, outputs = _definition(t)
        assert len(n["widgets_values"]) == len(widgets), f"{path.stem} node {n['id']} ({t}): widget count"
        for (name, kind, opts), value in zip(widgets, n["widgets_values"], strict=True):
            if kind is not None:
                _check_value(f"{path.stem} node {n['id']} {t}.{name}", kind, opts, value)
        assert [(i["name"], i["type"]) for i in n["inputs"]] == links, f"node {n['id']} ({t}) inputs"
        assert [(o["name"], o["type"]) for o in n["outputs"]] == outputs, f"node {n['id']} ({t}) outputs"
        required = {name for name, _ in links} - set((NODE_CLASS_MAPPINGS[t].INPUT_TYPES().get("optional") or {}) if t in NODE_CLASS_MAPPINGS else ())
        for inp in n["inputs"]:
            if inp["name"] in required and n.get("mode", 0) == 0:
                assert inp["link"] is not None, f"{path.stem} node {n['id']} ({t}): required input {inp['name']} unconnected"
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        assert src in nodes and dst in nodes, f"link {link_id}: unknown node"
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert out["type"] == inp["type"] == kind, f"link {link_id}: {out['type']} -> {inp['type']} ({kind})"
        assert link_id in out["links"] and inp["link"] == link_id, f"link {link_id} not recorded on both ends"


def _by_type(wf: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for n in wf["nodes"]:
        out.setdefault(n["type"], []).append(n)
    return out


def _chain(wf: dict) -> list[str]:
    """Node types along the links of our pack, from the first node."""
    nodes = {n["id"]: n for n in wf["nodes"]}
    nxt = {}
    for _, src, _, dst, _, kind in wf["links"]:
        if kind.startswith("LTXT_") and not kind.endswith("_OPTIONS") and nodes[dst]["type"] != "LTXTrainer_PushToHub":
            nxt[src] = dst
    start = next(i for i in nxt if i not in nxt.values())
    chain = [start]
    while chain[-1] in nxt:
        chain.append(nxt[chain[-1]])
    return [nodes[i]["type"].removeprefix("LTXTrainer_") for i in chain]


def test_full_pipeline_runs_offline_on_the_tiny_model(tmp_path):
    from ltx_train_lib.buckets import parse_buckets
    from ltx_train_lib.config import config_from_dict
    from nodes import train

    wf = load(_file("full_pipeline"))
    assert _chain(wf) == ["LoadVideos", "SplitScenes", "QwenCaption", "PrecomputeLatents_v2", "TrainLoRA_v2", "ConvertComfy"]
    nodes = _by_type(wf)
    (push,) = nodes["LTXTrainer_PushToHub"]
    assert push["mode"] == 2  # muted: the example never needs a network or a token
    assert _api_values(nodes["LTXTrainer_QwenCaption"][0])["model"] == "tiny"
    pre = _values(wf, nodes[PRE][0])
    assert pre["model"] == "tiny" and parse_buckets(pre["resolution_buckets"])
    values = _values(wf, nodes[TRAIN][0])
    ds = T.PrecomputedSet(tmp_path, None, "tiny", ("96x64x17",), 1, "x")
    cfg = config_from_dict(train.build_config(ds, values), "example workflow")
    assert cfg.model.model_source == "tiny" and cfg.optimization.steps <= 100
    assert cfg.acceleration.mixed_precision_mode == "no" and cfg.data.num_dataloader_workers == 0
    assert cfg.validation.video_dims[0] * cfg.validation.video_dims[1] <= 128 * 128


def test_training_from_a_dataset(tmp_path):
    from ltx_train_lib.config import config_from_dict
    from nodes import train

    wf = load(_file("from_dataset"))
    assert _chain(wf) == ["PrecomputeLatents_v2", "TrainLoRA_v2", "ConvertComfy"]
    (pre,) = _by_type(wf)[PRE]
    assert _api_values(pre)["dataset"] and pre["inputs"][0]["link"] is None  # reads a folder, no upstream node
    values = _values(wf, _by_type(wf)[TRAIN][0])
    config_from_dict(train.build_config(T.PrecomputedSet(tmp_path, None, "tiny", (), 1, "x"), values))


def test_audio_video_example_trains_tiny_ltx2_with_sound(tmp_path):
    from ltx_train_lib.config import config_from_dict
    from nodes import train

    wf = load(_file("audio_video_from_dataset"))
    assert _chain(wf) == ["PrecomputeLatents_v2", "TrainLoRA_v2", "ConvertComfy"]
    assert _values(wf, _by_type(wf)[PRE][0])["model"] == "tiny-ltx2"
    values = _values(wf, _by_type(wf)[TRAIN][0])
    assert values["modalities"] == "auto" and values["target_modules"] == ""  # the family's targets
    cfg = config_from_dict(train.build_config(T.PrecomputedSet(tmp_path, None, "tiny-ltx2", (), 1, "x"), values))
    assert cfg.model.model_source == "tiny-ltx2" and cfg.lora.target_modules is None


def test_ltx2_train_then_generate_uses_comfyuis_ltx2_nodes_with_sound():
    """The LoRA's MODEL drives ComfyUI's own LTX-2 sampling graph: one audio-video latent (EmptyLTXVLatentVideo +
    LTXVEmptyLatentAudio at the clips' fps) through SamplerCustomAdvanced, split, decoded to frames and to sound,
    muxed by CreateVideo. (In ComfyUI 0.33.0 this graph passes the server's validation except for the model files.)"""
    wf = load(_file("train_then_generate_ltx2"))
    nodes = {n["id"]: n for n in wf["nodes"]}
    by = _by_type(wf)
    links = {ln[0]: ln for ln in wf["links"]}

    def source(node, name):
        link = next(i for i in node["inputs"] if i["name"] == name)["link"]
        return nodes[links[link][1]]

    (guider,) = by["CFGGuider"]
    (convert,) = by["LTXTrainer_ConvertComfy"]
    (video,) = by["CreateVideo"]
    assert source(guider, "model") is convert and source(convert, "model") is by["CheckpointLoaderSimple"][0]
    assert source(video, "audio")["type"] == "LTXVAudioVAEDecode" and source(video, "images")["type"] == "VAEDecode"
    assert _values(wf, by[PRE][0])["model"] == "LTX-2_19B_DEV"
    fps = {_api_values(by["LTXVConditioning"][0])["frame_rate"], _api_values(by["LTXVEmptyLatentAudio"][0])["frame_rate"],
           _api_values(video)["fps"]}
    assert fps == {GEN.SAMPLE_FPS}
    assert _api_values(by["LTXVEmptyLatentAudio"][0])["frames_number"] == _api_values(by["EmptyLTXVLatentVideo"][0])["length"]


def test_train_then_generate_feeds_the_lora_model_to_the_sampler():
    wf = load(_file("train_then_generate"))
    nodes = {n["id"]: n for n in wf["nodes"]}
    by = _by_type(wf)
    (convert,) = by["LTXTrainer_ConvertComfy"]
    (ckpt,) = by["CheckpointLoaderSimple"]
    (sampler,) = by["KSampler"]
    (clip,) = by["CLIPLoader"]
    links = {ln[0]: ln for ln in wf["links"]}
    model_in = next(i for i in convert["inputs"] if i["name"] == "model")
    assert nodes[links[model_in["link"]][1]] is ckpt
    sampler_model = next(i for i in sampler["inputs"] if i["name"] == "model")
    assert nodes[links[sampler_model["link"]][1]] is convert
    assert _api_values(clip)["type"] == "ltxv"
    assert {"LTXVConditioning", "EmptyLTXVLatentVideo", "VAEDecode"} <= set(by)
    # Train and generate with the same model: the named version is the checkpoint's weights.
    assert _values(wf, by[PRE][0])["model"] == "LTXV_2B_0.9.5"
    assert _api_values(ckpt)["ckpt_name"] == "ltx-video-2b-v0.9.5.safetensors"
    assert _values(wf, by[TRAIN][0])["model"] == "(same as dataset)"


def test_compare_example_decodes_every_checkpoint_with_the_checkpoints_vae(tmp_path):
    from ltx_train_lib.config import config_from_dict
    from nodes import train

    wf = load(_file("train_then_compare"))
    nodes = {n["id"]: n for n in wf["nodes"]}
    by = _by_type(wf)
    links = {ln[0]: ln for ln in wf["links"]}

    def source(node, name):
        link = next(i for i in node["inputs"] if i["name"] == name)["link"]
        return nodes[links[link][1]], links[link][2]

    (compare,) = by["LTXTrainer_CompareCheckpoints"]
    (ckpt,) = by["CheckpointLoaderSimple"]
    assert source(compare, "model") == (ckpt, 0) and source(compare, "vae") == (ckpt, 2)
    assert source(compare, "lora")[0]["type"] == TRAIN and source(compare, "positive")[0]["type"] == "LTXVConditioning"
    assert source(by["SaveAnimatedWEBP"][0], "images") == (compare, 3)  # the labelled grid
    values = _values(wf, by[TRAIN][0])
    cfg = config_from_dict(train.build_config(T.PrecomputedSet(tmp_path, None, "LTXV_2B_0.9.5", (), 1, "x"), values))
    # checkpoints to compare: every 250 steps, all kept
    assert cfg.checkpoints.interval == 250 and cfg.checkpoints.keep_last_n == -1 and cfg.optimization.steps == 1000


def test_the_main_workflows_open_whole_and_readable():
    """At the zoom the editor opens them at, every node of the tiny (CPU) workflows lies inside a 1600x1000 window's
    canvas, at a scale where the editor still draws titles and widgets (LiteGraph skips text below 0.6)."""
    for key in ("full_pipeline", "from_dataset", "audio_video_from_dataset"):
        wf = load(_file(key))
        ds = wf["extra"]["ds"]
        assert GEN.MIN_SCALE <= ds["scale"] <= 0.75, key
        for n in wf["nodes"]:
            height = 0 if n["flags"].get("collapsed") else n["size"][1]
            x0, y0 = ((n["pos"][0] + ds["offset"][0]) * ds["scale"], (n["pos"][1] - GEN.TITLE_H + ds["offset"][1]) * ds["scale"])
            x1, y1 = ((n["pos"][0] + n["size"][0] + ds["offset"][0]) * ds["scale"], (n["pos"][1] + height + ds["offset"][1]) * ds["scale"])
            assert GEN.LEFT <= x0 and GEN.TOP <= y0 and x1 <= GEN.WINDOW[0] and y1 <= GEN.WINDOW[1], (key, n["type"], (x0, y0, x1, y1))


def test_committed_json_is_what_the_generator_writes():
    for name, build in GEN.WORKFLOWS.items():
        committed = load(ROOT / "workflows" / f"{name}.json")
        assert committed == json.loads(json.dumps(build().to_json())), f"{name}: run workflows/make_workflows.py"


# ------------------------------------------------------------------------------------------ template browser cards


def test_every_workflow_has_its_thumbnail_and_a_readable_title():
    from PIL import Image

    folder = ROOT / "workflows"
    assert sorted(p.name for p in folder.iterdir() if p.suffix not in (".json", ".jpg")) == ["make_workflows.py"]
    assert sorted(p.stem for p in folder.glob("*.jpg")) == sorted(p.stem for p in WORKFLOWS)  # no orphan either way
    for path in WORKFLOWS:
        # The frontend shows the file stem as the title: words, not an identifier.
        assert path.stem.startswith("LTX Trainer, ") and "_" not in path.stem, path.stem
        with Image.open(path.with_suffix(".jpg")) as im:  # ComfyUI's frontend asks for <stem>.jpg, nothing else
            assert im.format == "JPEG" and im.size == (GEN.THUMBNAIL_SIZE, GEN.THUMBNAIL_SIZE)


def test_make_workflows_regenerates_identical_files(tmp_path):
    written = GEN.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in (ROOT / "workflows").glob("*.[jj][sp][og]*"))
    for path in written:
        committed = ROOT / "workflows" / path.name
        assert path.read_bytes() == committed.read_bytes(), f"{path.name}: run workflows/make_workflows.py"
    again = GEN.write_all(tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]  # deterministic


def test_a_card_that_draws_a_missing_link_is_refused():
    example = GEN.EXAMPLES["from_dataset"]
    wrong = GEN.Example(example.title, example.build, (TRAIN, PRE))
    with pytest.raises(ValueError, match="no such link"):
        GEN._check_chain(wrong, wrong.build())


# ---------------------------------------------------------------------------------------------- trigger word once


def test_sample_captions_and_prompts_carry_the_trigger_word_once():
    from ltx_train_lib import synthetic
    from ltx_train_lib.captions_io import prepend_trigger, read_captions_checked

    trigger = GEN.TRIGGER_WORD
    read = read_captions_checked(ROOT / "samples" / "clips" / "captions.json")
    assert read.problems == []
    assert {e.media_path.name: e.caption for e in read.entries} == synthetic.sample_captions()
    assert sorted(e.media_path.name for e in read.entries) == sorted(p.name for p in (ROOT / "samples" / "clips").glob("*.mp4"))
    for entry in read.entries:  # the captions have no trigger: Precompute's trigger_word adds it, once
        assert trigger not in entry.caption.split()
        assert prepend_trigger(entry.caption, trigger).split().count(trigger) == 1
    for path in WORKFLOWS:
        wf = load(path)
        by = _by_type(wf)
        assert {_api_values(n)["trigger_word"] for n in by[PRE]} == {trigger}
        # Validation and generation prompts are written with the trigger once, at the start (Train LoRA would add
        # it to a prompt without it).
        prompts = [p for n in by[TRAIN] for p in _values(wf, n)["validation_prompts"].splitlines()]
        prompts += [_api_values(n)["text"] for n in by.get("CLIPTextEncode", []) if n.get("title") == "Positive"]
        assert prompts
        for prompt in prompts:
            assert prompt.startswith(f"{trigger} ") and prompt.split().count(trigger) == 1, prompt
