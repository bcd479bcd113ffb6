"""Errors a user can meet. Each message names the input, the problem and the fix."""


class LtxTrainError(Exception):
    """Base class: an expected failure with a message meant for the user (no traceback needed)."""


class ConfigError(LtxTrainError):
    """The training config is invalid."""


class DatasetError(LtxTrainError):
    """The dataset (media, captions, precomputed cache) is missing or inconsistent."""


class ModelLoadError(LtxTrainError):
    """A model source cannot be resolved or loaded."""


class TrainingError(LtxTrainError):
    """Training cannot continue (e.g. a non-finite loss)."""


class ConversionError(LtxTrainError):
    """A weights file is in neither the diffusers nor the ComfyUI layout."""


class OutputError(LtxTrainError):
    """An output folder or file cannot be written (read-only, no permission, a file in the way, disk full)."""
