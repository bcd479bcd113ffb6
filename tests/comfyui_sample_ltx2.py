"""Sample LTX-2 video + audio latents with ComfyUI's own code; run with ComfyUI's Python (tests/test_ltx2.py does).

    <comfyui-python> tests/comfyui_sample_ltx2.py SPEC.json

Imports the real ComfyUI from ``spec["comfyui"]`` (nothing of ComfyUI is copied here) and, for each job of the spec:

1. builds ComfyUI's ``LTXAV`` model (``comfy/ldm/lightricks/av_model.py``) from a ComfyUI-layout diffusion-model file
   through ComfyUI's loader (``comfy.sd.load_diffusion_model_state_dict``, what UNETLoader calls) with the file's
   ``config`` header entry (the dims and the settings no tensor shape encodes: RoPE type, precision and placement,
   causal first frame, the cross-modal gates' timestep scale, as LTX-2 checkpoints carry it), or the spec's
   ``transformer_config`` for a file without one;
2. applies a LoRA file as LoraLoaderModelOnly does: ``comfy.utils.load_torch_file`` + ``comfy.sd.load_lora_for_models``;
3. conditions on the given text context (the text connectors' outputs, video then audio, concatenated: ComfyUI's
   LTXAV takes such an already-processed context as is, ``LTXAVModel.preprocess_text_embeds``), sets the frame rate
   with ``LTXVConditioning``, joins a video and an audio latent with ``LTXVConcatAVLatent``, takes the sigmas of
   ``LTXVScheduler`` (from the video latent's token count, as ComfyUI's LTX-2 templates wire it) and samples with
   ``RandomNoise`` + ``CFGGuider`` (cfg 1) + ``KSamplerSelect`` euler through ``SamplerCustomAdvanced``, the nodes of
   ComfyUI's ``video_ltx2_t2v`` template; ``LTXVSeparateAVLatent`` splits the result;
4. writes ``<out_dir>/<job>.safetensors``: ``video`` [1, C, F, H, W] and ``audio`` [1, C, L, M].

Optionally (``spec["forward"]``: noisy latents and a sigma) it also runs one forward of each job's model through
ComfyUI's ``BaseModel.apply_model`` (the call its samplers make, on the packed AV latent), with the job's
``transformer_options`` (e.g. ``a2v_cross_attn``/``v2a_cross_attn``), and writes the velocities to
``<out_dir>/<job>_forward.safetensors``; a job with ``forward_only`` is not sampled.

One accommodation for the tiny test model: ComfyUI's LTXAVModel fixes the audio latent layout at 8 channels x 16 mel
bins (``num_audio_channels``/``audio_frequency_bins``, set in its constructor, not read from the weights); the
script sets those two attributes to the spec's audio latent shape. Writes ``<out_dir>/report.json``: the ComfyUI
version, the sigmas, and per job the model class, the LoRA keys ComfyUI logged as not loaded and the patched weights.
"""

from __future__ import annotations

import json
import os
import sys

from comfyui_script import call_node, start_comfyui


def main(spec_path: str) -> int:
    with open(spec_path) as fh:
        spec = json.load(fh)
    capture, version = start_comfyui(spec["comfyui"])
    import comfy.model_management
    import comfy.sd
    import comfy.utils
    import torch
    from comfy_extras.nodes_custom_sampler import CFGGuider, KSamplerSelect, RandomNoise, SamplerCustomAdvanced
    from comfy_extras.nodes_lt import LTXVConcatAVLatent, LTXVConditioning, LTXVScheduler, LTXVSeparateAVLatent
    from safetensors.torch import load_file, save_file

    metadata = {"config": json.dumps({"transformer": spec["transformer_config"]})}

    cond = load_file(spec["condition"])
    context = cond["context"].float()
    mask = cond["attention_mask"].long()
    positive = [[context, {"attention_mask": mask}]]
    negative = [[torch.zeros_like(context), {"attention_mask": mask}]]
    positive, negative = call_node(LTXVConditioning, positive=positive, negative=negative, frame_rate=float(spec["fps"]))[:2]
    video_latent = {"samples": torch.zeros(1, *spec["video_shape"])}
    audio_channels, _, audio_bins = spec["audio_shape"]
    audio_latent = {"samples": torch.zeros(1, *spec["audio_shape"]), "type": "audio"}
    av_latent = call_node(LTXVConcatAVLatent, video_latent=video_latent, audio_latent=audio_latent)[0]
    sigmas = call_node(LTXVScheduler, steps=spec["steps"], max_shift=2.05, base_shift=0.95, stretch=True, terminal=0.1,
                   latent=video_latent)[0]
    report = {"comfyui": version, "sigmas": [float(s) for s in sigmas], "jobs": {}}
    os.makedirs(spec["out_dir"], exist_ok=True)
    forward = load_file(spec["forward"]["inputs"]) if spec.get("forward") else None

    for job in spec["jobs"]:
        # As UNETLoader: the file's own header metadata, where it has ComfyUI's "config" entry; else the spec's.
        sd, file_metadata = comfy.utils.load_torch_file(job["model"], safe_load=True, return_metadata=True)
        sd = {k.removeprefix("model.").removeprefix("diffusion_model."): v for k, v in sd.items()}  # a checkpoint's keys
        own = bool(file_metadata and "config" in file_metadata)
        capture.messages.clear()
        model = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": torch.float32},
                                                         metadata=file_metadata if own else metadata)
        info = {"model_class": type(model.model).__name__, "config_from": "file" if own else "spec",
                "missing": [m[:200] for m in capture.messages if "missing" in m.lower()]}
        dm = model.model.diffusion_model
        dm.num_audio_channels, dm.audio_frequency_bins = audio_channels, audio_bins  # see the module docstring
        if job.get("lora"):
            lora = comfy.utils.load_torch_file(job["lora"], safe_load=True)
            capture.messages.clear()
            model, _ = comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0)
            info["not_loaded"] = [m for m in capture.messages if "lora key not loaded" in m]
            info["patched"] = len(model.patches)
        if forward is not None:
            velocity = _forward(model, forward, positive, spec["forward"]["sigma"], job.get("transformer_options", {}))
            save_file(velocity, os.path.join(spec["out_dir"], f"{job['name']}_forward.safetensors"))
        report["jobs"][job["name"]] = info
        if job.get("forward_only"):
            del model
            comfy.model_management.unload_all_models()
            continue
        guider = call_node(CFGGuider, model=model, positive=positive, negative=negative, cfg=1.0)[0]
        out = call_node(SamplerCustomAdvanced, noise=call_node(RandomNoise, noise_seed=spec["seed"])[0], guider=guider,
                    sampler=call_node(KSamplerSelect, sampler_name="euler")[0], sigmas=sigmas, latent_image=av_latent)[0]
        video, audio = call_node(LTXVSeparateAVLatent, av_latent=out)[:2]
        save_file({"video": video["samples"].float().contiguous(), "audio": audio["samples"].float().contiguous()},
                  os.path.join(spec["out_dir"], f"{job['name']}.safetensors"))
        del model, guider
        comfy.model_management.unload_all_models()
    with open(os.path.join(spec["out_dir"], "report.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    return 0


def _forward(model, inputs: dict, positive, sigma: float, options: dict) -> dict:
    """One ``apply_model`` call on noisy latents at ``sigma``, set up as ComfyUI's sampler sets it up for an AV latent
    (both streams packed into one flat tensor with their ``latent_shapes``; the conditioning built by ComfyUI's own
    ``encode_model_conds`` from ``positive``): the velocities of both streams."""
    import comfy.model_management
    import comfy.sampler_helpers
    import comfy.samplers
    import comfy.utils
    import torch

    comfy.model_management.load_models_gpu([model])  # a LoRA's patches are applied to the weights here
    streams = (inputs["video"].float(), inputs["audio"].float())
    x, shapes = comfy.utils.pack_latents(streams)
    conds = comfy.sampler_helpers.convert_cond(positive)
    conds = comfy.samplers.encode_model_conds(model.model.extra_conds, conds, x, "cpu", "positive", latent_image=x,
                                              denoise_mask=None, seed=0, latent_shapes=shapes)
    kwargs = {k: v.process_cond(batch_size=1, area=None).cond for k, v in conds[0]["model_conds"].items()}
    with torch.no_grad():
        denoised = model.model.apply_model(x, torch.tensor([sigma]), transformer_options=options, **kwargs)
    # apply_model returns the denoised latents (flow matching: x - sigma * v): back to the velocity.
    video, audio = comfy.utils.unpack_latents((x - denoised) / sigma, shapes)
    return {"video": video.float().contiguous(), "audio": audio.float().contiguous()}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
