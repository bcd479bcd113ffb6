"""The training objective against hand-computed values (reference/ltx-video-trainer.md §3.5-3.7).

A batch of B=2 samples, L=3 tokens (latent grid 3x1x1: one token per latent frame), C=2 channels, with a fixed
generator and a fake transformer that records what it was fed and answers a fixed tensor. The expected model input,
timesteps, velocity target and loss are written out element by element with plain floats below, from the documented
draw order of the generator (sigmas, then noise, then one first-frame coin per sample), never by calling the code
under test. Each test also checks that the expected loss is far from what a flipped target (x0 - noise), a loss
that counts the conditioning tokens, or a per-sample mean would give, so a trainer with either bug fails here.
"""

from __future__ import annotations

import math

import pytest
import torch

from ltx_train_lib.training.strategy import _masked_mse, _Noised, flow_matching_loss, reference_video_loss

SEED = 0  # first-frame coins of this seed: 0.953 (sample 0: not conditioned at p=0.5), 0.036 (sample 1: conditioned)
B, L, C = 2, 3, 2
X0 = [
    [[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25]],
    [[2.0, 1.0], [-0.5, -1.0], [4.0, 0.0]],
]
# What the fake model predicts. Sample 1's first token is its conditioning token: a large error there would move a
# loss that (wrongly) counted it.
PRED = [
    [[0.5, 0.5], [-1.0, 2.0], [0.0, 1.0]],
    [[9.0, -9.0], [1.0, 1.0], [-2.0, 0.5]],
]
LO, HI = 0.2, 0.9  # uniform sigma range


class FakeTransformer(torch.nn.Module):
    """Stands in for LTXVideoTransformer3DModel: records the keyword arguments, answers ``answer``."""

    def __init__(self, answer: torch.Tensor) -> None:
        super().__init__()
        self.answer = answer
        self.kwargs: dict = {}

    def forward(self, **kwargs):
        self.kwargs = kwargs
        assert kwargs["return_dict"] is False
        return (self.answer.clone(),)


def _batch(latents: list) -> dict:
    return {
        "latents": torch.tensor(latents),
        "prompt_embeds": torch.zeros(B, 4, 32),
        "prompt_attention_mask": torch.ones(B, 4, dtype=torch.bool),
        "num_frames": 3,
        "height": 1,
        "width": 1,
        "fps": 24.0,
        "indices": [0, 1],
    }


def _draws(seed: int, noise_tokens: int = L) -> tuple[list[float], list, list[float]]:
    """The generator's draws in the order the objective documents: B uniforms (sigmas), the noise, B coins."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(B, generator=g).tolist()
    noise = torch.randn(B, noise_tokens, C, generator=g).tolist()
    coins = torch.rand(B, generator=g).tolist()
    return u, noise, coins


def _sq(a: float, b: float) -> float:
    return (a - b) ** 2


def test_noising_target_timesteps_and_masked_loss_by_hand() -> None:
    u, noise, coins = _draws(SEED)
    assert coins[0] >= 0.5 > coins[1], "seed no longer gives one conditioned and one free sample"
    sigma = [LO + (HI - LO) * u[0], LO + (HI - LO) * u[1]]
    assert abs(sigma[0] - sigma[1]) > 0.1  # a sigma broadcast over the wrong axis would show

    conditioned = [False, True]  # coin < p = 0.5
    x_t = [[[0.0] * C for _ in range(L)] for _ in range(B)]
    timestep = [[0.0] * L for _ in range(B)]
    target = [[[0.0] * C for _ in range(L)] for _ in range(B)]
    for b in range(B):
        for t in range(L):
            cond = conditioned[b] and t == 0  # the first latent frame = the first H*W = 1 token
            timestep[b][t] = 0.0 if cond else sigma[b] * 1000.0
            for c in range(C):
                x0, n = X0[b][t][c], noise[b][t][c]
                x_t[b][t][c] = x0 if cond else (1.0 - sigma[b]) * x0 + sigma[b] * n
                target[b][t][c] = n - x0

    kept = [(b, t) for b in range(B) for t in range(L) if not (conditioned[b] and t == 0)]
    assert len(kept) == 5
    loss = sum(_sq(PRED[b][t][c], target[b][t][c]) for b, t in kept for c in range(C)) / (len(kept) * C)
    # What the wrong objectives would give: each must be far from the right answer, or this test proves nothing.
    flipped = sum(_sq(PRED[b][t][c], -target[b][t][c]) for b, t in kept for c in range(C)) / (len(kept) * C)
    every_token = sum(_sq(PRED[b][t][c], target[b][t][c]) for b in range(B) for t in range(L) for c in range(C)) / (B * L * C)
    per_sample = sum(
        sum(_sq(PRED[b][t][c], target[b][t][c]) for bb, t in kept if bb == b for c in range(C))
        / (sum(1 for bb, _ in kept if bb == b) * C)
        for b in range(B)
    ) / B
    for wrong in (flipped, every_token, per_sample):
        assert abs(wrong - loss) > 0.05 * loss

    model = FakeTransformer(torch.tensor(PRED))
    out = flow_matching_loss(
        model, _batch(X0), torch.Generator().manual_seed(SEED),
        sampling_mode="uniform", sampling_params={"min_value": LO, "max_value": HI}, first_frame_p=0.5,
        device=torch.device("cpu"), model_dtype=torch.float32,
    )
    kw = model.kwargs
    torch.testing.assert_close(kw["hidden_states"], torch.tensor(x_t), rtol=0, atol=1e-6)
    torch.testing.assert_close(kw["timestep"].float(), torch.tensor(timestep), rtol=0, atol=1e-3)
    assert kw["timestep"].shape == (B, L)  # per token: the conditioning token alone is at 0
    assert (kw["num_frames"], kw["height"], kw["width"]) == (3, 1, 1)
    assert kw["rope_interpolation_scale"] == pytest.approx((8 / 24.0, 32, 32))
    torch.testing.assert_close(out.sigmas, torch.tensor(sigma), rtol=0, atol=1e-6)
    assert out.conditioned.tolist() == conditioned
    assert out.loss.item() == pytest.approx(loss, rel=1e-5)


def test_no_conditioning_at_p0_and_sigma_from_the_logit_normal() -> None:
    """p = 0: every token noised and counted. shifted_logit_normal with an explicit shift: sigma = sigmoid(z*std+shift)."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(B, generator=g).tolist()
    noise = torch.randn(B, L, C, generator=g).tolist()
    std, shift = 0.5, 0.3
    sigma = [1.0 / (1.0 + math.exp(-(zi * std + shift))) for zi in z]
    x_t = [[[(1 - sigma[b]) * X0[b][t][c] + sigma[b] * noise[b][t][c] for c in range(C)] for t in range(L)] for b in range(B)]
    loss = sum(_sq(PRED[b][t][c], noise[b][t][c] - X0[b][t][c]) for b in range(B) for t in range(L) for c in range(C)) / (B * L * C)
    flipped = sum(_sq(PRED[b][t][c], X0[b][t][c] - noise[b][t][c]) for b in range(B) for t in range(L) for c in range(C)) / (B * L * C)
    assert abs(flipped - loss) > 0.05 * loss

    model = FakeTransformer(torch.tensor(PRED))
    out = flow_matching_loss(
        model, _batch(X0), torch.Generator().manual_seed(3),
        sampling_mode="shifted_logit_normal", sampling_params={"std": std, "shift": shift}, first_frame_p=0.0,
        device=torch.device("cpu"), model_dtype=torch.float32,
    )
    torch.testing.assert_close(model.kwargs["hidden_states"], torch.tensor(x_t), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        model.kwargs["timestep"].float(), torch.tensor([[s * 1000.0] * L for s in sigma]), rtol=0, atol=1e-3
    )
    assert out.conditioned.tolist() == [False, False]
    assert out.loss.item() == pytest.approx(loss, rel=1e-5)


def test_masked_mse_literal() -> None:
    """Whole-batch mean of squared errors over the tokens not fed clean, every channel counted."""
    target = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[0.0, 0.0], [1.0, -1.0], [2.0, 2.0]]])
    pred = torch.tensor([[[1.0, 0.0], [3.0, 5.0], [5.0, 6.0]], [[100.0, 100.0], [0.0, 0.0], [2.0, 4.0]]])
    cond = torch.tensor([[False, False, False], [True, False, False]])
    noised = _Noised(x_t=pred, timesteps=torch.zeros(B, L), target=target, cond_mask=cond,
                     sigmas=torch.zeros(B), conditioned=torch.tensor([False, True]))
    # squared errors of the 5 kept tokens: (0+4) + (0+1) + (0+0) + (1+1) + (0+4) = 11, over 5 tokens x 2 channels
    assert _masked_mse(pred, noised).item() == pytest.approx(11 / 10)


def test_reference_video_loss_by_hand() -> None:
    """IC-LoRA: [reference (clean, t=0) | target noised], the target's velocity, loss over the target tokens only."""
    ref = [[[0.1 * (b + t + c) for c in range(C)] for t in range(L)] for b in range(B)]
    u, noise, coins = _draws(SEED)
    assert coins[0] >= 0.5 > coins[1]
    sigma = [LO + (HI - LO) * ui for ui in u]
    conditioned = [False, True]
    x_t, timestep, target = [], [], []
    for b in range(B):
        rows, ts, tg = [], [], []
        for t in range(L):
            cond = conditioned[b] and t == 0
            rows.append([X0[b][t][c] if cond else (1 - sigma[b]) * X0[b][t][c] + sigma[b] * noise[b][t][c] for c in range(C)])
            ts.append(0.0 if cond else sigma[b] * 1000.0)
            tg.append([noise[b][t][c] - X0[b][t][c] for c in range(C)])
        x_t.append(rows)
        timestep.append(ts)
        target.append(tg)
    # The model answers 2L tokens; the first L (the reference's) are huge and must not count.
    answer = [[[50.0, -50.0]] * L + PRED[b] for b in range(B)]
    kept = [(b, t) for b in range(B) for t in range(L) if not (conditioned[b] and t == 0)]
    loss = sum(_sq(PRED[b][t][c], target[b][t][c]) for b, t in kept for c in range(C)) / (len(kept) * C)
    flipped = sum(_sq(PRED[b][t][c], -target[b][t][c]) for b, t in kept for c in range(C)) / (len(kept) * C)
    assert abs(flipped - loss) > 0.05 * loss

    batch = _batch(X0)
    batch["ref_latents"] = torch.tensor(ref)
    model = FakeTransformer(torch.tensor(answer))
    out = reference_video_loss(
        model, batch, torch.Generator().manual_seed(SEED),
        sampling_mode="uniform", sampling_params={"min_value": LO, "max_value": HI}, first_frame_p=0.5,
        device=torch.device("cpu"), model_dtype=torch.float32,
    )
    kw = model.kwargs
    torch.testing.assert_close(kw["hidden_states"], torch.tensor([ref[b] + x_t[b] for b in range(B)]), rtol=0, atol=1e-6)
    torch.testing.assert_close(kw["timestep"].float(), torch.tensor([[0.0] * L + timestep[b] for b in range(B)]), rtol=0, atol=1e-3)
    assert out.loss.item() == pytest.approx(loss, rel=1e-5)
