"""Block swapping (memory.blocks_to_swap): the same losses and LoRA as without it, at most two swapped blocks on the
device at once, and no device copy of a swapped weight kept alive by the autograd graph between a block's forward
and its backward (which is where the memory is saved)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import tiny_config_dict


def _family():
    from ltx_train_lib.models.registry import get_family

    return get_family("ltxv")


def _model(blocks: int, *, checkpointing: bool):
    """A random 5-block LTX-Video transformer with a LoRA whose B is not zero (so every gradient is non-trivial)."""
    from peft import LoraConfig

    from ltx_train_lib.models.ltxv.memory import build_meta_transformer

    torch.manual_seed(0)
    model = build_meta_transformer(dict(in_channels=8, out_channels=8, num_attention_heads=4, attention_head_dim=8,
                                        cross_attention_dim=32, num_layers=blocks, caption_channels=32)).to_empty(device="cpu")
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    for n, p in model.named_parameters():
        if "lora_" in n:
            torch.nn.init.normal_(p, std=0.05)  # B too (peft starts it at zero, which would leave A's gradient zero)
            p.requires_grad_(True)
    if checkpointing:
        model.enable_gradient_checkpointing()
    return model.train()


def _step(model):
    from ltx_train_lib.memory.calibrate import training_loss
    from ltx_train_lib.models.ltxv.memory import random_batch

    return training_loss(_family(), model, random_batch(model, (2, 2, 2), 2, 16), False, torch.float32)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_swapped_blocks_give_the_same_loss_and_gradients_with_at_most_two_resident(checkpointing):
    from ltx_train_lib.training.block_swap import install_block_swap

    plain, swapped = _model(5, checkpointing=checkpointing), _model(5, checkpointing=checkpointing)
    swap = install_block_swap(_family().blocks(swapped), 4, "cpu", checkpointing=checkpointing)
    # Swapped blocks hold placeholders between uses: any use of a weight that was not brought back fails loudly.
    assert all(p.numel() == 0 for p in _family().blocks(swapped)[0].parameters() if not p.requires_grad)
    seen = []
    for block in _family().blocks(swapped):  # residency as each block runs (forward, recompute) ...
        block.register_forward_pre_hook(lambda *a: seen.append(swap.resident))
    for _ in range(2):
        loss_a, loss_b = _step(plain), _step(swapped)
        loss_a.backward()
        loss_b.backward()
        assert torch.equal(loss_a, loss_b)
    grads_a = {n: p.grad for n, p in plain.named_parameters() if p.grad is not None}
    grads_b = {n: p.grad for n, p in swapped.named_parameters() if p.grad is not None}
    assert len(grads_a) == 5 * 16 and set(grads_a) == set(grads_b)
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)
    assert all(g.abs().sum() > 0 for g in grads_b.values())
    assert swap.max_resident == 2 and max(seen) <= 2 and swap.resident == 0  # ... and nothing left after backward
    assert swap.transfers == 2 * (4 + 4)  # per step: each swapped block once for its forward, once for its backward
    with torch.no_grad():  # validation: forwards only, each block returned after its forward
        _step(swapped)
    assert swap.resident == 0 and swap.transfers == 2 * 8 + 4


@pytest.mark.parametrize("checkpointing", [False, True])
def test_the_graph_holds_no_device_copy_of_a_swapped_weight(checkpointing, monkeypatch):
    """Between forward and backward every device copy is freed: Linear's saved (transposed) weight views are kept
    as references and rebuilt in backward. Without that hook the graph would keep them all (checked below)."""
    from ltx_train_lib.training import block_swap

    copies: list[weakref.ref] = []
    original = block_swap._Slot.set

    def recording(slot, value):
        if value.numel():
            copies.append(weakref.ref(value.untyped_storage()))
        original(slot, value)

    monkeypatch.setattr(block_swap._Slot, "set", recording)

    def alive_after_forward(hooks: bool) -> int:
        model = _model(5, checkpointing=checkpointing)
        block_swap.install_block_swap(_family().blocks(model), 4, "cpu", checkpointing=checkpointing or not hooks)
        copies.clear()
        loss = _step(model)
        gc.collect()
        alive = sum(ref() is not None for ref in copies)
        loss.backward()
        return alive

    assert alive_after_forward(hooks=True) == 0
    if not checkpointing:
        assert alive_after_forward(hooks=False) > 0  # what the saved-tensor hooks prevent


def test_trainer_with_block_swap_trains_the_same_lora(tmp_path: Path, precomputed_dataset: Path, tiny_model_dir: Path):
    """Through the trainer (model_setup wires it in): identical losses and LoRA weights with and without swapping
    both blocks of the tiny model, with gradient checkpointing too."""
    from ltx_train_lib.config import config_from_dict
    from ltx_train_lib.training.trainer import Trainer

    def run(name: str, **overrides):
        cfg = config_from_dict(tiny_config_dict(precomputed_dataset, tmp_path / name, optimization__steps=3,
                                                checkpoints__interval=None, **overrides))
        trainer = Trainer(cfg)
        result = trainer.train()
        swap = getattr(trainer.unwrapped, "_ltx_block_swap", None)
        return result.losses, load_file(str(tmp_path / name / "lora_weights.safetensors")), swap

    base_losses, base_lora, none = run("plain")
    assert none is None and len(base_losses) == 3
    for gc_on in (False, True):
        losses, lora, swap = run(f"swap_{gc_on}", memory__blocks_to_swap=2, optimization__enable_gradient_checkpointing=gc_on)
        assert losses == base_losses
        assert lora.keys() == base_lora.keys() and all(torch.equal(lora[k], base_lora[k]) for k in lora)
        assert swap.max_resident <= 2 and swap.transfers >= 3 * 2 * 2


def test_block_swap_needs_no_more_blocks_than_there_are():
    from ltx_train_lib.errors import ConfigError
    from ltx_train_lib.training.block_swap import install_block_swap

    model = _model(2, checkpointing=False)
    with pytest.raises(ConfigError, match="blocks_to_swap is 3 but the transformer has 2 blocks"):
        install_block_swap(_family().blocks(model), 3, "cpu")
    swap = install_block_swap(_family().blocks(model), 2, "cpu")
    swap.remove()  # back on the device for good, hooks gone: a plain model again
    assert all(p.numel() > 0 for p in model.parameters())
    _step(model).backward()
    assert swap.transfers == 0
