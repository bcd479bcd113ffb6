"""The job folder: its file names, the job id, finding a job's folder safely, reading and updating job.json.

A jobs root holds one folder per job::

    <jobs root>/<job id>/
        job.json              what the parent (TrainLoRA node) knows, written atomically: id, name, status, pgid,
                              created, started, ended, returncode, error, node_id, num_processes
        training_config.yaml  the resolved config the child reads
        train.log             the child's stdout and stderr; each run starts with a RUN_HEADER line
        events.jsonl          written by the trainer (see :mod:`ltx_train_lib.events`)
        ...                   every training output (checkpoints/, validation_samples/, lora_weights*.safetensors)

The job id is a hash of the resolved config without ``output_dir`` (plus the process count and an optional
identity, e.g. a dataset fingerprint), so queueing the same job again maps to the same folder: the trainer resumes
from the newest checkpoint there, and a finished job returns its result at once without spawning anything.
A CLI run has only events.jsonl: every reader treats job.json as optional.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ltx_train_lib.errors import ConfigError
from ltx_train_lib.events import EVENTS_FILE
from ltx_train_lib.fileio import write_text_atomic

from .errors import JobNotFoundError, UnsafeJobPathError

JOB_FILE = "job.json"
CONFIG_FILE = "training_config.yaml"
LOG_FILE = "train.log"
# Written (with the time and the command) before each run's output, so a run's own log lines can be found.
RUN_HEADER = "===== ltx_train_lib.jobs: starting"
# A plain folder name: no separators, no leading dot (hides `.`/`..` and the atomic writers' `.x.tmp` folders).
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$")


# ------------------------------------------------------------------------------------------------------ job id


def resolve_config(config: Any) -> Any:
    """A TrainerConfig from a TrainerConfig or a dict (validated: a ConfigError names the field and the fix)."""
    from ltx_train_lib.config import TrainerConfig, config_from_dict

    if isinstance(config, TrainerConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(dict(config), "training config")
    raise ConfigError(f"training config: expected a TrainerConfig or a dict, got {type(config).__name__}")


# Sections and fields that came after jobs were first written: left at their defaults they stay out of the id, so a
# config that does not set them keeps the id it had (and queueing it again resumes its checkpoint).
LATER_FIELDS: tuple[tuple[str, str | None], ...] = (
    ("memory", None),
    ("distributed", None),
    ("model", "audio_vae_path"),
    ("optimization", "optimizer_implementation"),
)


def job_id_for(config: Any, num_processes: int = 1, identity: str | None = None) -> str:
    """Stable id of a job: the resolved config without ``output_dir``, the process count (a checkpoint resumes only
    with the same count) and ``identity`` (what the config does not show, e.g. the dataset's content)."""
    cfg = resolve_config(config)
    data = cfg.model_dump(mode="json")
    data.pop("output_dir", None)
    for section, field in LATER_FIELDS:
        part = getattr(cfg, section)
        if field is None and part == type(part)():
            data.pop(section, None)
        elif field is not None and getattr(part, field) == type(part).model_fields[field].get_default(call_default_factory=True):
            data[section].pop(field, None)
    payload = json.dumps({"config": data, "num_processes": int(num_processes), "identity": identity}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- job folders


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is a plain folder name, else raise :class:`UnsafeJobPathError`."""
    if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise UnsafeJobPathError(
            f"job id {job_id!r} is not a plain folder name (letters, digits, '_', '-', '.', '+'; no leading dot)"
        )
    return job_id


def job_dir(root: str | Path, job_id: str) -> Path:
    """The job's folder, checked to exist and to lie inside ``root`` (a job folder symlinked elsewhere is refused)."""
    check_job_id(job_id)
    root_real = Path(root).resolve()
    folder = root_real / job_id
    if not folder.is_dir():
        # Not the root's path: this message reaches the browser, which has no business knowing server paths.
        raise JobNotFoundError(f"no job {job_id!r} in the jobs folder")
    if folder.resolve().parent != root_real:
        raise UnsafeJobPathError(f"job folder {job_id!r} points outside the jobs root")
    return folder


def is_job_folder(root_real: Path, folder: Path) -> bool:
    """Whether ``folder`` (an entry of the resolved jobs root) is a job: a plain name, really inside, with a job.json
    or an events file."""
    if not JOB_ID_RE.match(folder.name) or not folder.is_dir() or folder.resolve().parent != root_real:
        return False
    return (folder / JOB_FILE).is_file() or (folder / EVENTS_FILE).is_file()


def events_path(folder: Path, meta: Mapping[str, Any]) -> Path:
    """The job's events file: in its folder, else in its output_dir (job.json allows output elsewhere)."""
    own = folder / EVENTS_FILE
    if own.is_file() or not meta.get("output_dir"):
        return own
    return Path(str(meta["output_dir"])) / EVENTS_FILE


# ------------------------------------------------------------------------------------------------------ job.json


def read_job_meta(folder: Path) -> dict[str, Any]:
    """job.json as a dict; {} when absent (a CLI run has only events). Raises ValueError when unreadable.

    The message names the job and the file inside it, not the server path: the web panel shows it.
    """
    path = folder / JOB_FILE
    if not path.is_file():
        return {}
    where = f"job {folder.name!r}: {JOB_FILE}"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{where} cannot be read ({exc.strerror or type(exc).__name__})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{where} is not a JSON object")
    return meta


def read_job_meta_or_empty(folder: Path) -> dict[str, Any]:
    """job.json, or {} when it is absent or unreadable (the writer starts over from what it knows)."""
    try:
        return read_job_meta(folder)
    except ValueError:
        return {}


def update_job_meta(
    folder: Path, fields: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Merge ``fields`` into job.json (``defaults`` only where a key is missing) and write it atomically, so a
    reader never sees half a file; returns the whole."""
    meta = read_job_meta_or_empty(folder)
    meta.update(fields)
    for key, value in (defaults or {}).items():
        meta.setdefault(key, value)
    write_text_atomic(folder / JOB_FILE, json.dumps(meta, indent=2) + "\n")
    return meta
