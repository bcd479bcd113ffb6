"""ltx_train_lib: train LTX-Video LoRAs and full fine-tunes from raw videos.

Importing this package is cheap (no torch); heavy modules import torch, diffusers and transformers lazily.
"""

__version__ = "0.1.0"

from ltx_train_lib import library_noise as _library_noise

_library_noise.install()
