"""What every family's validation sampler shares: the VAE on the device only while it is used, and a fresh
scheduler per sample."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any


class SamplerBase:
    """Mixin for samplers holding ``self.components`` (with ``vae`` and ``scheduler``) and ``self.device``."""

    components: Any
    device: Any

    def close(self) -> None:
        if self.components.vae is not None:
            self.components.vae.to("cpu")

    @contextmanager
    def _vae_on_device(self):
        vae = self.components.vae
        if vae is None:
            raise ValueError("validation needs the VAE: load the components with 'vae'")
        vae.to(self.device)
        try:
            yield vae
        finally:
            vae.to("cpu")

    def _scheduler(self, steps: int):
        """A fresh scheduler for ``steps`` steps (set_timesteps/step keep state: never reuse the shared one).

        With one step the terminal-shift stretch (shift_terminal) divides 0 by 0 and every sigma becomes NaN; a
        single Euler step from sigma 1 needs no stretch, so it is dropped there.
        """
        base = self.components.scheduler
        if steps == 1 and base.config.get("shift_terminal"):
            return type(base).from_config(base.config, shift_terminal=None)
        return copy.deepcopy(base)
