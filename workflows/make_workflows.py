"""Write the example workflows (ComfyUI UI format, version 0.4) and their template-browser thumbnails.

    .venv/bin/python workflows/make_workflows.py        # rewrites workflows/*.json and workflows/*.jpg

Widget values are laid out positionally over each node's widget inputs (INPUT_TYPES order, required then optional),
exactly as the editor saves them, starting from the node's defaults; only the values an example needs are set
here. Core ComfyUI nodes used by the generation example are described in CORE_NODES (their 0.3.64 definitions).

ComfyUI's template browser (Workflow > Browse Templates) lists a pack's ``workflows/*.json`` by file name: the
frontend shows the file stem as the card's title (and, with '-' and '_' read as spaces, as its description) and
loads ``<stem>.jpg`` from the same folder as the card's image (``mediaSubtype: 'jpg'`` is fixed for custom-node
templates; there is no index.json for them). So each file is named by its readable title, and a 256x256 JPEG
drawn here (the node chain under the title) sits beside it. Drawing and encoding are deterministic: running this
again writes the same bytes (tests/test_workflows.py checks).
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ltx_train_lib.fileio import write_bytes_atomic, write_text_atomic  # noqa: E402
from ltx_train_lib.synthetic import SEGMENT_CAPTIONS  # noqa: E402
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
SAMPLE_FOLDER = "ltx_trainer_sample"  # raw sample videos in ComfyUI's input folder (see docs/nodes.md)
SAMPLE_DATASET = "ltx_trainer_sample_dataset"  # a captioned sample dataset in ComfyUI's input folder
# Precompute's trigger_word puts it before every caption once; the captions themselves (samples/clips/captions.json)
# do not start with it. Validation and generation prompts are used as written, so they start with it.
TRIGGER_WORD = "zxq"
# What the first sample clip's first scene shows (its caption), as a prompt for the trained LoRA.
SAMPLE_PROMPT = f"{TRIGGER_WORD} {SEGMENT_CAPTIONS[0]}"
SAMPLE_CLIPS = HERE.parent / "samples" / "clips"


def sample_clips_fps() -> float:
    """The frame rate of the bundled sample clips (the most common one), read from the files: a LoRA trained on
    them is sampled at it (LTXVConditioning's frame_rate; ComfyUI assumes 25 without it) and saved at it."""
    from collections import Counter

    from ltx_train_lib.media import probe_media

    rates = Counter(round(probe_media(p).fps, 3) for p in sorted(SAMPLE_CLIPS.glob("*.mp4")))
    if not rates:
        raise SystemExit(f"no sample clips in {SAMPLE_CLIPS}")
    return float(sorted(rates.items(), key=lambda kv: (-kv[1], kv[0]))[0][0])


SAMPLE_FPS = sample_clips_fps()

# Core nodes (ComfyUI 0.3.64): link inputs, widget names, outputs. Widget values are given in full below.
CORE_NODES: dict[str, dict[str, Any]] = {
    "CheckpointLoaderSimple": {"inputs": [], "widgets": ["ckpt_name"], "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]},
    "CLIPLoader": {"inputs": [], "widgets": ["clip_name", "type", "device"], "outputs": [("CLIP", "CLIP")]},
    "CLIPTextEncode": {"inputs": [("clip", "CLIP")], "widgets": ["text"], "outputs": [("CONDITIONING", "CONDITIONING")]},
    "LTXVConditioning": {
        "inputs": [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
        "widgets": ["frame_rate"],
        "outputs": [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
    },
    "EmptyLTXVLatentVideo": {"inputs": [], "widgets": ["width", "height", "length", "batch_size"], "outputs": [("LATENT", "LATENT")]},
    "KSampler": {
        "inputs": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent_image", "LATENT")],
        "widgets": ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
        "outputs": [("LATENT", "LATENT")],
    },
    "VAEDecode": {"inputs": [("samples", "LATENT"), ("vae", "VAE")], "widgets": [], "outputs": [("IMAGE", "IMAGE")]},
    "SaveAnimatedWEBP": {
        "inputs": [("images", "IMAGE")],
        "widgets": ["filename_prefix", "fps", "lossless", "quality", "method"],
        "outputs": [],
    },
    "MarkdownNote": {"inputs": [], "widgets": ["text"], "outputs": []},
}
# ComfyUI 0.33.0's LTX-2 nodes (comfy_extras/nodes_lt.py, nodes_lt_audio.py, nodes_custom_sampler.py, nodes_video.py;
# the same wiring as ComfyUI's own LTX-2 text-to-video template): used by the LTX-2 train-then-generate example only.
CORE_NODES.update({
    "LoraLoaderModelOnly": {"inputs": [("model", "MODEL")], "widgets": ["lora_name", "strength_model"],
                            "outputs": [("MODEL", "MODEL")]},
    "LTXAVTextEncoderLoader": {"inputs": [], "widgets": ["text_encoder", "ckpt_name", "device"], "outputs": [("CLIP", "CLIP")]},
    "LTXVAudioVAELoader": {"inputs": [], "widgets": ["ckpt_name"], "outputs": [("Audio VAE", "VAE")]},
    "LTXVEmptyLatentAudio": {"inputs": [("audio_vae", "VAE")], "widgets": ["frames_number", "frame_rate", "batch_size"],
                             "outputs": [("Latent", "LATENT")]},
    "LTXVConcatAVLatent": {"inputs": [("video_latent", "LATENT"), ("audio_latent", "LATENT")], "widgets": [],
                           "outputs": [("latent", "LATENT")]},
    "LTXVSeparateAVLatent": {"inputs": [("av_latent", "LATENT")], "widgets": [],
                             "outputs": [("video_latent", "LATENT"), ("audio_latent", "LATENT")]},
    "LTXVScheduler": {"inputs": [("latent", "LATENT")], "widgets": ["steps", "max_shift", "base_shift", "stretch", "terminal"],
                      "outputs": [("SIGMAS", "SIGMAS")]},
    "CFGGuider": {"inputs": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
                  "widgets": ["cfg"], "outputs": [("GUIDER", "GUIDER")]},
    "KSamplerSelect": {"inputs": [], "widgets": ["sampler_name"], "outputs": [("SAMPLER", "SAMPLER")]},
    "RandomNoise": {"inputs": [], "widgets": ["noise_seed", "control_after_generate"], "outputs": [("NOISE", "NOISE")]},
    "SamplerCustomAdvanced": {
        "inputs": [("noise", "NOISE"), ("guider", "GUIDER"), ("sampler", "SAMPLER"), ("sigmas", "SIGMAS"), ("latent_image", "LATENT")],
        "widgets": [], "outputs": [("output", "LATENT"), ("denoised_output", "LATENT")],
    },
    "LTXVAudioVAEDecode": {"inputs": [("samples", "LATENT"), ("audio_vae", "VAE")], "widgets": [], "outputs": [("Audio", "AUDIO")]},
    "CreateVideo": {"inputs": [("images", "IMAGE"), ("audio", "AUDIO")], "widgets": ["fps", "bit_depth"], "outputs": [("VIDEO", "VIDEO")]},
    "SaveVideo": {"inputs": [("video", "VIDEO")], "widgets": ["filename_prefix", "format", "codec"], "outputs": []},
})


def _spec(type_: str) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str]], dict[str, Any]]:
    """(link inputs, widget names, outputs, widget defaults) of a node type."""
    if type_ in CORE_NODES:
        c = CORE_NODES[type_]
        return c["inputs"], c["widgets"], c["outputs"], {}
    cls = NODE_CLASS_MAPPINGS[type_]
    spec = cls.INPUT_TYPES()
    links, widgets, defaults = [], [], {}
    for cat in ("required", "optional"):
        for name, (kind, opts) in spec.get(cat, {}).items():
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                widgets.append(name)
                defaults[name] = opts.get("default", kind[0] if isinstance(kind, list) else None)
            else:
                links.append((name, kind))
    outputs = list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES, strict=True))
    return links, widgets, outputs, defaults


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    size: tuple[int, int]
    values: dict[str, Any]
    mode: int = 0
    title: str | None = None
    collapsed: bool = False  # shown as its title bar only (the options nodes: many widgets, rarely changed)
    input_links: dict[str, int] = field(default_factory=dict)
    output_links: dict[int, list[int]] = field(default_factory=dict)


class Graph:
    def __init__(self, graph_id: str) -> None:
        self.graph_id = graph_id
        self.nodes: list[Node] = []
        self.links: list[list[Any]] = []

    def add(self, type_: str, pos: tuple[int, int], size: tuple[int, int] = (360, 200), mode: int = 0,
            title: str | None = None, collapsed: bool = False, **values: Any) -> Node:
        _, widgets, _, _ = _spec(type_)
        unknown = set(values) - set(widgets)
        if unknown:
            raise KeyError(f"{type_} has no widget(s) {sorted(unknown)}")
        node = Node(len(self.nodes) + 1, type_, pos, size, values, mode, title, collapsed)
        self.nodes.append(node)
        return node

    def add_with_options(self, type_: str, pos: tuple[int, int], size: tuple[int, int], **values: Any) -> Node:
        """A compact node (TrainLoRA_v2, PrecomputeLatents_v2) with the values it shows; the others go to its options
        node (Training/Precompute Options, collapsed just above it: below, the node's previews would cover it once it
        has run), which is added only when some value is not its default."""
        options_type = COMPACT_OPTIONS[type_]
        _, widgets, _, _ = _spec(type_)
        _, _, _, option_defaults = _spec(options_type)
        node = self.add(type_, pos, size, **{k: v for k, v in values.items() if k in widgets})
        rest = {k: v for k, v in values.items() if k not in widgets}
        if any(option_defaults[k] != v for k, v in rest.items()):
            title = NODE_DISPLAY_NAME_MAPPINGS[options_type].removesuffix(" (LTX Trainer)")  # short: it is collapsed
            options = self.add(options_type, (pos[0] + 20, pos[1] - 60), (size[0], 420), title=title,
                               collapsed=True, **rest)
            self.link(options, 0, node, "options")
        return node

    def link(self, src: Node, out_slot: int, dst: Node, input_name: str) -> None:
        _, _, outputs, _ = _spec(src.type)
        links, _, _, _ = _spec(dst.type)
        names = [n for n, _ in links]
        kind = outputs[out_slot][1]
        expected = dict(links)[input_name]
        if kind != expected:
            raise TypeError(f"{src.type}[{out_slot}] is {kind}, {dst.type}.{input_name} wants {expected}")
        link_id = len(self.links) + 1
        self.links.append([link_id, src.id, out_slot, dst.id, names.index(input_name), kind])
        dst.input_links[input_name] = link_id
        src.output_links.setdefault(out_slot, []).append(link_id)

    def _order(self) -> dict[int, int]:
        deps = {n.id: {ln[1] for ln in self.links if ln[3] == n.id} for n in self.nodes}
        order: list[int] = []
        while len(order) < len(self.nodes):
            ready = sorted(i for i, d in deps.items() if i not in order and d <= set(order))
            order.extend(ready)
        return {node_id: i for i, node_id in enumerate(order)}

    def _view(self) -> dict[str, Any]:
        """The zoom and offset the editor opens the workflow at: every node (note included; a collapsed node as its
        title bar) inside a 1600x1000 window's canvas, at most at scale 0.75 and at least at 0.6: below that the
        editor draws nodes without their text (LiteGraph's low-quality zoom), so a wider graph starts at its left
        end instead."""
        boxes = [(n.pos[0], n.pos[1] - TITLE_H, n.pos[0] + n.size[0], n.pos[1] + (0 if n.collapsed else n.size[1]))
                 for n in self.nodes]
        left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
        right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
        scale = min(0.75, VIEW[0] / (right - left), VIEW[1] / (bottom - top))
        scale = float(f"{max(MIN_SCALE, scale):.3f}")
        return {"scale": scale, "offset": [round(LEFT / scale - left), round(TOP / scale - top)]}

    def to_json(self) -> dict[str, Any]:
        order = self._order()
        nodes = []
        for n in self.nodes:
            links, widgets, outputs, defaults = _spec(n.type)
            missing = [w for w in widgets if w not in n.values and w not in defaults]
            if missing:
                raise KeyError(f"{n.type}: give values for {missing}")
            entry: dict[str, Any] = {
                "id": n.id,
                "type": n.type,
                "pos": list(n.pos),
                "size": list(n.size),
                "flags": {"collapsed": True} if n.collapsed else {},
                "order": order[n.id],
                "mode": n.mode,
                "inputs": [{"name": name, "type": kind, "link": n.input_links.get(name)} for name, kind in links],
                "outputs": [
                    {"name": name, "type": kind, "links": n.output_links.get(i, []), "slot_index": i}
                    for i, (name, kind) in enumerate(outputs)
                ],
                "properties": {"Node name for S&R": n.type},
                "widgets_values": [n.values.get(w, defaults.get(w)) for w in widgets],
            }
            if n.title:
                entry["title"] = n.title
            if n.type == "MarkdownNote":
                del entry["inputs"], entry["outputs"]
                entry["properties"] = {}
            nodes.append(entry)
        return {
            "id": self.graph_id,
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": {"ds": self._view()},
            "version": 0.4,
        }


# The editor's canvas in a 1600x1000 window: it lies under the frontend's side bar (left) and tool bar (top), so the
# graph starts right of and below them; a node's title bar is drawn above its pos.
WINDOW, LEFT, TOP, MARGIN, TITLE_H, MIN_SCALE = (1600, 1000), 80, 90, 20, 30, 0.6
VIEW = (WINDOW[0] - LEFT - MARGIN, WINDOW[1] - TOP - MARGIN)

TRAIN = "LTXTrainer_TrainLoRA_v2"
PRECOMPUTE = "LTXTrainer_PrecomputeLatents_v2"
# Each compact node and the node whose record feeds its 'options' input.
COMPACT_OPTIONS = {TRAIN: "LTXTrainer_TrainingOptions", PRECOMPUTE: "LTXTrainer_PrecomputeOptions"}

# Settings that make the examples run on the `tiny` model on a CPU in a few minutes.
TINY_TRAIN = dict(
    model="(same as dataset)", steps=40, learning_rate=1e-3, rank=4, alpha=4, batch_size=1,
    scheduler_type="constant", mixed_precision_mode="no", compile_with_inductor=False, enable_gradient_checkpointing=False,
    num_dataloader_workers=0,
    validation_prompts=SAMPLE_PROMPT, validation_interval=20,
    validation_inference_steps=4, validation_width=96, validation_height=64, validation_frames=17,
    validation_guidance_scale=1.0, checkpoint_interval=10, keep_last_n=2,
)
TINY_PRECOMPUTE = dict(model="tiny", resolution_buckets="96x64x17", trigger_word=TRIGGER_WORD, decode_videos=True)
TINY_NOTE = (
    "**Runs on the `tiny` model (random weights) on CPU in a few minutes** — it checks the pipeline, it does not "
    "learn anything useful. For a real LoRA pick a real model in *Qwen Caption* and *Precompute Latents* (e.g. "
    "`LTXV_2B_0.9.6_DEV` or a file from `models/checkpoints`), and set *Train LoRA*'s steps, rank and precision.\n\n"
)


def full_pipeline() -> Graph:
    g = Graph("8b7f2c1e-0d3a-4c55-9a61-3f0c1a2b7d01")
    g.add("MarkdownNote", (40, -330), (760, 220), text=TINY_NOTE + (
        f"Put videos into `ComfyUI/input/{SAMPLE_FOLDER}/` first (sample clips: see the pack's docs/nodes.md). "
        "*Push to Hub* is muted (Ctrl+M to enable); it reads the token from `HF_TOKEN` or `hf auth login`."))
    load = g.add("LTXTrainer_LoadVideos", (40, 0), (340, 260), folder=SAMPLE_FOLDER, dataset_name="tiny_example")
    split = g.add("LTXTrainer_SplitScenes", (420, 0), (340, 330), crf=23)
    caption = g.add("LTXTrainer_QwenCaption", (800, 0), (380, 430), model="tiny", max_new_tokens=16, batch_size=2)
    pre = g.add_with_options(PRECOMPUTE, (1220, 0), (380, 300), **TINY_PRECOMPUTE)
    train = g.add_with_options(TRAIN, (1640, 0), (400, 560), job_name="tiny example", **TINY_TRAIN)
    convert = g.add("LTXTrainer_ConvertComfy", (2080, 0), (340, 200), lora_name="ltx_trainer_example_tiny", overwrite=True)
    push = g.add("LTXTrainer_PushToHub", (2080, 260), (340, 220), mode=2, repo_id="your-name/ltxv-tiny-lora", private=True)
    g.link(load, 0, split, "videos")
    g.link(split, 0, caption, "videos")
    g.link(caption, 0, pre, "captions")
    g.link(pre, 0, train, "dataset")
    g.link(train, 0, convert, "lora")
    g.link(train, 0, push, "lora")
    return g


def from_dataset() -> Graph:
    g = Graph("5d2e9f40-7c1b-4e8a-b3d2-6a9c0e4f1b02")
    g.add("MarkdownNote", (40, -330), (760, 220), text=TINY_NOTE + (
        f"*dataset* is a folder in `ComfyUI/input/` holding `captions.json` (`[{{\"caption\", \"media_path\"}}]`, "
        f"paths relative to it) and the clips — here `{SAMPLE_DATASET}` (see docs/nodes.md). Write the captions "
        f"without the trigger word: *trigger_word* (`{TRIGGER_WORD}`) puts it before each one. The cache goes to "
        "`output/ltx_trainer/datasets/`, nothing is written into input/."))
    pre = g.add_with_options(PRECOMPUTE, (40, 0), (380, 300), dataset=SAMPLE_DATASET, **TINY_PRECOMPUTE)
    train = g.add_with_options(TRAIN, (460, 0), (400, 560), job_name="tiny example (dataset)", **TINY_TRAIN)
    convert = g.add("LTXTrainer_ConvertComfy", (900, 0), (340, 200), lora_name="ltx_trainer_example_tiny_dataset", overwrite=True)
    g.link(pre, 0, train, "dataset")
    g.link(train, 0, convert, "lora")
    return g


def audio_video_from_dataset() -> Graph:
    g = Graph("9a3c5e71-4b2d-4f0e-8c6a-1d7e2b9f3a04")
    g.add("MarkdownNote", (40, -330), (760, 220), text=(
        "**An audio-video LoRA on `tiny-ltx2` (a random-weight LTX-2) on CPU in a few minutes** — it checks the "
        "pipeline with sound, it does not learn anything useful. *Precompute Latents* encodes each clip's video and "
        "its sound track (clips without sound are named in its summary and left out of audio training); *Train "
        "LoRA* with modalities `auto` trains video and audio together and writes ComfyUI `LTXAV` keys. For a real "
        "LoRA pick an LTX-2 model (e.g. `LTX-2_19B_DEV`, `LTX-2.3_22B_DEV` or a file from `models/checkpoints`).\n\n"
        f"*dataset*: a captioned folder in `ComfyUI/input/` (here `{SAMPLE_DATASET}`, whose sample clips have sound)."))
    pre = g.add_with_options(PRECOMPUTE, (40, 0), (380, 300), dataset=SAMPLE_DATASET,
                **dict(TINY_PRECOMPUTE, model="tiny-ltx2"))
    train = g.add_with_options(TRAIN, (460, 0), (400, 560), job_name="tiny LTX-2 audio-video example",
                  **TINY_TRAIN)
    convert = g.add("LTXTrainer_ConvertComfy", (900, 0), (340, 200), lora_name="ltx_trainer_example_tiny_ltx2_av",
                    overwrite=True)
    g.link(pre, 0, train, "dataset")
    g.link(train, 0, convert, "lora")
    return g


def ltxv_2b_sampling_inputs(g: Graph) -> tuple[Node, Node, Node]:
    """The LTXV 2B checkpoint, the T5 prompt pair at the clips' frame rate and an empty 768x512x49 latent, as the GPU
    examples sample with them: (checkpoint loader, LTXVConditioning, EmptyLTXVLatentVideo)."""
    ckpt = g.add("CheckpointLoaderSimple", (900, 300), (340, 100), ckpt_name="ltx-video-2b-v0.9.5.safetensors")
    clip = g.add("CLIPLoader", (900, 460), (340, 110), clip_name="t5xxl_fp16.safetensors", type="ltxv", device="default")
    pos = g.add("CLIPTextEncode", (1280, 300), (400, 160), title="Positive", text=f"{SAMPLE_PROMPT}, smooth motion")
    neg = g.add("CLIPTextEncode", (1280, 500), (400, 160), title="Negative",
                text="worst quality, inconsistent motion, blurry, jittery, distorted")
    cond = g.add("LTXVConditioning", (1720, 300), (300, 80), frame_rate=SAMPLE_FPS)  # the training clips' fps
    latent = g.add("EmptyLTXVLatentVideo", (1720, 440), (300, 130), width=768, height=512, length=49, batch_size=1)
    g.link(clip, 0, pos, "clip")
    g.link(clip, 0, neg, "clip")
    g.link(pos, 0, cond, "positive")
    g.link(neg, 0, cond, "negative")
    return ckpt, cond, latent


def train_then_generate() -> Graph:
    g = Graph("c41a6e3b-2f8d-4b70-8e19-d5b7a0c3e903")
    g.add("MarkdownNote", (40, -370), (820, 260), text=(
        "**Train, then generate with the new LoRA through ComfyUI's own LTX-Video nodes.** Needs a real model: "
        "`ltx-video-2b-v0.9.5.safetensors` in `models/checkpoints`, `t5xxl_fp16.safetensors` in "
        "`models/text_encoders`, and a GPU. Train and generate with the same model (here the named version "
        "`LTXV_2B_0.9.5`, the same weights as the checkpoint file).\n\n*Save LoRA for ComfyUI* writes the LoRA to "
        "`models/loras` and applies it to the checkpoint's MODEL with ComfyUI's loader; it fails if any LoRA key "
        f"patched nothing. *dataset*: a captioned folder in `ComfyUI/input/` (here `{SAMPLE_DATASET}`). "
        f"*LTXVConditioning*'s frame_rate is the clips' {SAMPLE_FPS:g} fps (the LoRA's `frame_rate` metadata): "
        "sample at the rate you trained at (ComfyUI assumes 25)."))
    pre = g.add_with_options(PRECOMPUTE, (40, 0), (380, 300), dataset=SAMPLE_DATASET, model="LTXV_2B_0.9.5",
                resolution_buckets="768x512x49", trigger_word=TRIGGER_WORD, decode_videos=True)
    train = g.add_with_options(TRAIN, (460, 0), (400, 560), job_name="LTXV 2B LoRA", model="(same as dataset)",
                  steps=1000, learning_rate=2e-4,
                  rank=32, alpha=32, batch_size=1, validation_prompts=SAMPLE_PROMPT,
                  validation_interval=250, validation_width=768, validation_height=512, validation_frames=49,
                  validation_inference_steps=30, checkpoint_interval=250)
    ckpt, cond, latent = ltxv_2b_sampling_inputs(g)
    convert = g.add("LTXTrainer_ConvertComfy", (1280, 0), (340, 200), lora_name=f"ltxv_2b_{TRIGGER_WORD}_lora", overwrite=False,
                    strength=1.0)
    sampler = g.add("KSampler", (2060, 0), (320, 270), seed=42, control_after_generate="fixed", steps=30, cfg=3.0,
                    sampler_name="euler", scheduler="simple", denoise=1.0)
    decode = g.add("VAEDecode", (2420, 0), (200, 50))
    save = g.add("SaveAnimatedWEBP", (2420, 120), (400, 400), filename_prefix=f"ltx_trainer/{TRIGGER_WORD}", fps=SAMPLE_FPS,
                 lossless=False, quality=90, method="default")
    g.link(pre, 0, train, "dataset")
    g.link(train, 0, convert, "lora")
    g.link(ckpt, 0, convert, "model")
    g.link(convert, 0, sampler, "model")
    g.link(cond, 0, sampler, "positive")
    g.link(cond, 1, sampler, "negative")
    g.link(latent, 0, sampler, "latent_image")
    g.link(sampler, 0, decode, "samples")
    g.link(ckpt, 2, decode, "vae")
    g.link(decode, 0, save, "images")
    return g


def train_then_generate_ltx2() -> Graph:
    g = Graph("e7d41b2a-6c3f-4a8e-9b15-2f0a7c8d6e05")
    ckpt_name, gemma = "ltx-2-19b-dev.safetensors", "gemma_3_12B_it.safetensors"
    frames = 97
    g.add("MarkdownNote", (40, -390), (860, 280), text=(
        "**Train an audio-video LoRA on LTX-2 19B, then generate video with sound through ComfyUI's own LTX-2 nodes** "
        "(ComfyUI 0.33 or newer, a GPU). Needs `ltx-2-19b-dev.safetensors` in `models/checkpoints` (transformer, "
        "VAEs and vocoder in one file, as Lightricks publishes it) and a Gemma 3 12B text encoder in "
        "`models/text_encoders`. Train and generate with the same model (the named version `LTX-2_19B_DEV` is the "
        "checkpoint's weights).\n\n*Save LoRA for ComfyUI* writes the LoRA (LTXAV keys) to `models/loras` and "
        "applies it to the checkpoint's MODEL with ComfyUI's loader; it fails if any key patches nothing. "
        f"*dataset*: a captioned folder in `ComfyUI/input/` with clips that have sound (here `{SAMPLE_DATASET}`). "
        f"The frame rate in *LTXVConditioning* and *LTXV Empty Latent Audio* is the clips' {SAMPLE_FPS:g} fps (the "
        "LoRA's `frame_rate` metadata)."))
    pre = g.add_with_options(PRECOMPUTE, (40, 0), (380, 300), dataset=SAMPLE_DATASET, model="LTX-2_19B_DEV",
                resolution_buckets="768x512x97", trigger_word=TRIGGER_WORD, decode_videos=True)
    train = g.add_with_options(TRAIN, (460, 0), (400, 560), job_name="LTX-2 19B audio-video LoRA",
                  model="(same as dataset)", steps=1000, learning_rate=2e-4, rank=32, alpha=32, batch_size=1,
                  validation_prompts=SAMPLE_PROMPT, validation_interval=250, validation_width=768,
                  validation_height=512, validation_frames=frames, validation_inference_steps=30,
                  checkpoint_interval=250)
    ckpt = g.add("CheckpointLoaderSimple", (900, 300), (340, 100), ckpt_name=ckpt_name)
    text = g.add("LTXAVTextEncoderLoader", (900, 440), (340, 110), text_encoder=gemma, ckpt_name=ckpt_name, device="default")
    audio_vae = g.add("LTXVAudioVAELoader", (900, 590), (340, 60), ckpt_name=ckpt_name)
    convert = g.add("LTXTrainer_ConvertComfy", (1280, 0), (340, 200), lora_name=f"ltx2_19b_{TRIGGER_WORD}_av_lora",
                    overwrite=False, strength=1.0)
    pos = g.add("CLIPTextEncode", (1280, 300), (400, 160), title="Positive", text=f"{SAMPLE_PROMPT}, with its sound")
    neg = g.add("CLIPTextEncode", (1280, 500), (400, 160), title="Negative",
                text="blurry, low quality, still frame, watermark, overlay, titles, subtitles")
    cond = g.add("LTXVConditioning", (1720, 300), (300, 80), frame_rate=SAMPLE_FPS)
    video_latent = g.add("EmptyLTXVLatentVideo", (1720, 440), (300, 130), width=768, height=512, length=frames, batch_size=1)
    audio_latent = g.add("LTXVEmptyLatentAudio", (1720, 610), (300, 110), frames_number=frames, frame_rate=SAMPLE_FPS,
                         batch_size=1)
    av = g.add("LTXVConcatAVLatent", (2060, 560), (260, 60))
    guider = g.add("CFGGuider", (2060, 300), (260, 100), cfg=3.0)
    sampler_select = g.add("KSamplerSelect", (2060, 440), (260, 60), sampler_name="euler")
    noise = g.add("RandomNoise", (2060, 660), (260, 90), noise_seed=42, control_after_generate="fixed")
    sigmas = g.add("LTXVScheduler", (2060, 790), (260, 160), steps=30, max_shift=2.05, base_shift=0.95, stretch=True,
                   terminal=0.1)
    sample = g.add("SamplerCustomAdvanced", (2360, 300), (260, 120))
    split = g.add("LTXVSeparateAVLatent", (2660, 300), (260, 60))
    decode = g.add("VAEDecode", (2960, 240), (200, 50))
    decode_audio = g.add("LTXVAudioVAEDecode", (2960, 360), (240, 60))
    video = g.add("CreateVideo", (3240, 240), (260, 90), fps=SAMPLE_FPS, bit_depth=8)
    save = g.add("SaveVideo", (3540, 240), (400, 400), filename_prefix=f"ltx_trainer/{TRIGGER_WORD}_av", format="mp4",
                 codec="auto")
    g.link(pre, 0, train, "dataset")
    g.link(train, 0, convert, "lora")
    g.link(ckpt, 0, convert, "model")
    g.link(text, 0, pos, "clip")
    g.link(text, 0, neg, "clip")
    g.link(pos, 0, cond, "positive")
    g.link(neg, 0, cond, "negative")
    g.link(audio_vae, 0, audio_latent, "audio_vae")
    g.link(video_latent, 0, av, "video_latent")
    g.link(audio_latent, 0, av, "audio_latent")
    g.link(convert, 0, guider, "model")
    g.link(cond, 0, guider, "positive")
    g.link(cond, 1, guider, "negative")
    g.link(av, 0, sigmas, "latent")
    g.link(noise, 0, sample, "noise")
    g.link(guider, 0, sample, "guider")
    g.link(sampler_select, 0, sample, "sampler")
    g.link(sigmas, 0, sample, "sigmas")
    g.link(av, 0, sample, "latent_image")
    g.link(sample, 0, split, "av_latent")
    g.link(split, 0, decode, "samples")
    g.link(ckpt, 2, decode, "vae")
    g.link(split, 1, decode_audio, "samples")
    g.link(audio_vae, 0, decode_audio, "audio_vae")
    g.link(decode, 0, video, "images")
    g.link(decode_audio, 0, video, "audio")
    g.link(video, 0, save, "video")
    return g


def train_then_compare() -> Graph:
    g = Graph("3f8a2d61-9e4b-4c7a-a1d5-7b2e0c9f4a06")
    g.add("MarkdownNote", (40, -370), (820, 260), text=(
        "**Train, then compare the LoRA's checkpoints through ComfyUI's own sampler** — the samples look exactly "
        "like what ComfyUI will give you with the LoRA, unlike the trainer's own validation videos. Needs "
        "`ltx-video-2b-v0.9.5.safetensors` in `models/checkpoints`, `t5xxl_fp16.safetensors` in "
        "`models/text_encoders`, and a GPU. *Train LoRA* keeps a checkpoint every 250 steps (*Training Options*: "
        "checkpoint_interval 250, keep_last_n -1 = all); *Compare Checkpoints* applies each one (and the base model) "
        "with ComfyUI's LoRA patcher, samples the same prompt and seed with ComfyUI's KSampler code and decodes them "
        "with the checkpoint's VAE into one labelled grid.\n\nLook at the grid, type the step you like into "
        "*pick_step* and a name into *save_as*, and queue again: the samples are reused and the picked LoRA is "
        "copied into `models/loras` for a LoRA loader."))
    pre = g.add_with_options(PRECOMPUTE, (40, 0), (380, 300), dataset=SAMPLE_DATASET, model="LTXV_2B_0.9.5",
                             resolution_buckets="768x512x49", trigger_word=TRIGGER_WORD, decode_videos=True)
    train = g.add_with_options(TRAIN, (460, 0), (400, 560), job_name="LTXV 2B LoRA (compared)",
                               model="(same as dataset)", steps=1000, learning_rate=2e-4, rank=32, alpha=32,
                               validation_prompts=SAMPLE_PROMPT, validation_interval=0, checkpoint_interval=250,
                               keep_last_n=-1)
    ckpt, cond, latent = ltxv_2b_sampling_inputs(g)
    compare = g.add("LTXTrainer_CompareCheckpoints", (2060, 0), (420, 620), sampling_seed=42, steps=30, cfg=3.0,
                    sampler_name="euler", scheduler="simple")
    save = g.add("SaveAnimatedWEBP", (2520, 0), (700, 500), filename_prefix=f"ltx_trainer/{TRIGGER_WORD}_compare",
                 fps=SAMPLE_FPS, lossless=False, quality=90, method="default")
    g.link(pre, 0, train, "dataset")
    g.link(ckpt, 0, compare, "model")
    g.link(train, 0, compare, "lora")
    g.link(cond, 0, compare, "positive")
    g.link(cond, 1, compare, "negative")
    g.link(latent, 0, compare, "latent_image")
    g.link(ckpt, 2, compare, "vae")
    g.link(compare, 3, save, "images")
    return g


@dataclass(frozen=True)
class Example:
    title: str  # the file stem: the template browser shows it as the card's title
    build: Callable[[], Graph]
    chain: tuple[str, ...]  # node types drawn on the card, each linked to the next in the graph


EXAMPLES: dict[str, Example] = {
    "full_pipeline": Example(
        "LTX Trainer, full pipeline (tiny model, CPU)",
        full_pipeline,
        ("LTXTrainer_LoadVideos", "LTXTrainer_SplitScenes", "LTXTrainer_QwenCaption", PRECOMPUTE,
         TRAIN, "LTXTrainer_ConvertComfy"),
    ),
    "from_dataset": Example(
        "LTX Trainer, train from a dataset (tiny model, CPU)",
        from_dataset,
        (PRECOMPUTE, TRAIN, "LTXTrainer_ConvertComfy"),
    ),
    "audio_video_from_dataset": Example(
        "LTX Trainer, audio-video LoRA (tiny LTX-2, CPU)",
        audio_video_from_dataset,
        (PRECOMPUTE, TRAIN, "LTXTrainer_ConvertComfy"),
    ),
    "train_then_generate": Example(
        "LTX Trainer, train then generate (LTXV 2B, GPU)",
        train_then_generate,
        (PRECOMPUTE, TRAIN, "LTXTrainer_ConvertComfy", "KSampler", "VAEDecode",
         "SaveAnimatedWEBP"),
    ),
}
EXAMPLES["train_then_generate_ltx2"] = Example(
    "LTX Trainer, train then generate with sound (LTX-2 19B, GPU)",
    train_then_generate_ltx2,
    (PRECOMPUTE, TRAIN, "LTXTrainer_ConvertComfy", "CFGGuider",
     "SamplerCustomAdvanced", "LTXVSeparateAVLatent", "VAEDecode", "CreateVideo", "SaveVideo"),
)
EXAMPLES["train_then_compare"] = Example(
    "LTX Trainer, compare checkpoints with ComfyUI sampling (LTXV 2B, GPU)",
    train_then_compare,
    (PRECOMPUTE, TRAIN, "LTXTrainer_CompareCheckpoints", "SaveAnimatedWEBP"),
)
WORKFLOWS: dict[str, Callable[[], Graph]] = {ex.title: ex.build for ex in EXAMPLES.values()}  # file stem -> builder

# ------------------------------------------------------------------------------------------------------ thumbnails

THUMBNAIL_SIZE = 256
CORE_LABELS = {"KSampler": "KSampler", "VAEDecode": "VAE Decode", "SaveAnimatedWEBP": "Save Animated WEBP"}
_BACKGROUND, _TEXT, _MUTED, _ARROW = (24, 26, 38), (236, 238, 245), (150, 156, 180), (110, 116, 140)
_STAGE_COLOURS = {  # box fill by what the node does
    "dataset": (38, 92, 150),
    "train": (112, 62, 150),
    "save": (40, 120, 84),
    "core": (78, 82, 98),
}
_STAGES = {
    "LTXTrainer_LoadVideos": "dataset", "LTXTrainer_SplitScenes": "dataset", "LTXTrainer_QwenCaption": "dataset",
    PRECOMPUTE: "dataset", TRAIN: "train", "LTXTrainer_TrainingOptions": "train",
    "LTXTrainer_PrecomputeOptions": "dataset", "LTXTrainer_ConvertComfy": "save",
    "LTXTrainer_PushToHub": "save", "LTXTrainer_CompareCheckpoints": "save",
}


def _label(type_: str) -> str:
    if type_ in NODE_DISPLAY_NAME_MAPPINGS:
        return NODE_DISPLAY_NAME_MAPPINGS[type_].removesuffix(" (LTX Trainer)")
    return CORE_LABELS.get(type_, type_)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled font (FreeType): the same on every machine
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _check_chain(example: Example, graph: Graph) -> None:
    """The card must show what the workflow holds: every drawn node exists, linked to the next one."""
    ids = {}
    for n in graph.nodes:
        ids.setdefault(n.type, n.id)
    missing = [t for t in example.chain if t not in ids]
    if missing:
        raise KeyError(f"{example.title}: the card shows {missing}, which the workflow does not have")
    linked = {(ln[1], ln[3]) for ln in graph.links}
    for a, b in zip(example.chain, example.chain[1:], strict=False):
        if (ids[a], ids[b]) not in linked:
            raise ValueError(f"{example.title}: the card draws {a} -> {b}, but the workflow has no such link")


def thumbnail(example: Example) -> bytes:
    """A 256x256 JPEG: the pack's name, the workflow's title, and its node chain top to bottom."""
    from PIL import Image, ImageDraw

    size = THUMBNAIL_SIZE
    img = Image.new("RGB", (size, size), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    pack, _, rest = example.title.partition(", ")
    name, _, qualifier = (rest or pack).partition(" (")  # "full pipeline" / "tiny model, CPU)"
    draw.text((14, 10), pack.upper(), font=_font(11), fill=_MUTED)
    y = 26
    for line in textwrap.wrap(name[:1].upper() + name[1:], width=22)[:2]:
        draw.text((14, y), line, font=_font(18), fill=_TEXT)
        y += 22
    if qualifier:
        draw.text((14, y), f"({qualifier}", font=_font(13), fill=_MUTED)
        y += 16
    top, bottom = y + 10, size - 10
    n = len(example.chain)
    box_h, gap = 22, min(14, (bottom - top - n * 22) // max(1, n - 1))
    y0 = top + (bottom - top - (n * box_h + (n - 1) * gap)) // 2
    left, right = 34, size - 34
    label_font = _font(13)
    for i, type_ in enumerate(example.chain):
        y = y0 + i * (box_h + gap)
        colour = _STAGE_COLOURS[_STAGES.get(type_, "core")]
        draw.rounded_rectangle((left, y, right, y + box_h), radius=5, fill=colour)
        label = _label(type_)
        width = draw.textlength(label, font=label_font)
        draw.text(((size - width) / 2, y + 4), label, font=label_font, fill=_TEXT)
        if i + 1 < n:  # an arrow down to the next node
            mid, y1, y2 = size // 2, y + box_h + 1, y + box_h + gap - 1
            draw.line((mid, y1, mid, y2 - 3), fill=_ARROW, width=2)
            draw.polygon([(mid - 4, y2 - 4), (mid + 4, y2 - 4), (mid, y2)], fill=_ARROW)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, subsampling=0, optimize=False)  # 4:4:4 keeps the small text sharp
    return buf.getvalue()


def write_all(folder: Path) -> list[Path]:
    """Write every example's workflow JSON and thumbnail into ``folder``; returns the files written."""
    written = []
    for example in EXAMPLES.values():
        graph = example.build()
        _check_chain(example, graph)
        written.append(write_text_atomic(folder / f"{example.title}.json", json.dumps(graph.to_json(), indent=2) + "\n"))
        written.append(write_bytes_atomic(folder / f"{example.title}.jpg", thumbnail(example)))
    return written


def main() -> None:
    written = write_all(HERE)
    for path in written:
        print(f"wrote {path}")
    for stale in sorted({*HERE.glob("*.json"), *HERE.glob("*.jpg")} - set(written)):  # renamed or removed examples
        stale.unlink()
        print(f"removed {stale}")


if __name__ == "__main__":
    main()
