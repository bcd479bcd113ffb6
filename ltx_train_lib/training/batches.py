"""The training batches: the batch plan's order from its (epoch, position) on, through one loader for the whole run.

Resume stays exact with loader workers:

- the plan's position counts only the batches training consumed; workers prefetch ahead on the order's own cursor;
- the loader seeds its workers from its own generator: without one, starting it draws from the global torch RNG, the
  stream LoRA dropout uses, so a run resumed mid-epoch (a loader started there) left the uninterrupted run's masks;
- workers ignore SIGTERM/SIGINT: a cancel signals the whole process group, and a worker killed by it crashed the run
  (torch raises "DataLoader worker ... is killed by signal") instead of letting it stop after the step with a
  checkpoint. The main process stops them when the run ends; they also exit when it dies.
"""

from __future__ import annotations

import contextlib
import random
import signal
from collections.abc import Iterator
from typing import Any

import torch

from ltx_train_lib.data import BucketBatchPlan, PrecomputedDataset, collate
from ltx_train_lib.platform_compat import stop_signals


class PlanOrder:
    """The plan's batches (lists of sample indices) from its current (epoch, position) on, endlessly: the loader's
    batch sampler. It keeps its own cursor and the length of each epoch it has reached."""

    def __init__(self, plan: BucketBatchPlan) -> None:
        self.plan, self.start = plan, (plan.epoch, plan.position)
        self.lengths: dict[int, int] = {}

    def __iter__(self) -> Iterator[list[int]]:
        epoch, position = self.start
        while True:
            batches = self.plan.batches_for_epoch(epoch)
            self.lengths[epoch] = len(batches)
            yield from batches[position:]
            epoch, position = epoch + 1, 0


def plan_batches(dataset: PrecomputedDataset, plan: BucketBatchPlan, *, workers: int, seed: int, rank: int = 0,
                 pin_memory: bool = False) -> Iterator[dict[str, Any]]:
    """Collated batches in ``plan``'s order, endlessly; ``plan.epoch``/``plan.position`` advance as each is yielded
    (a checkpoint taken between two yields resumes with the next one)."""
    from torch.utils.data import DataLoader

    order = PlanOrder(plan)
    if workers > 0:
        generator = torch.Generator().manual_seed(random.Random(f"{seed}-{rank}-loader").getrandbits(63))
        loader = DataLoader(dataset, batch_sampler=order, num_workers=workers, collate_fn=collate, pin_memory=pin_memory,
                            generator=generator, worker_init_fn=_ignore_stop_signals)
        with _stop_signals_blocked():  # until each worker ignores them (a forked worker inherits the blocked mask)
            iterator = iter(loader)
    else:
        iterator = (collate([dataset[i] for i in b]) for b in order)
    for batch in iterator:
        if plan.position >= order.lengths[plan.epoch]:
            plan.epoch, plan.position = plan.epoch + 1, 0
        plan.position += 1
        yield batch


def _ignore_stop_signals(worker_id: int) -> None:  # noqa: ARG001 - the DataLoader's worker_init_fn
    for sig in stop_signals():  # SIGBREAK too on Windows, where no signal mask exists
        signal.signal(sig, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals())


@contextlib.contextmanager
def _stop_signals_blocked():
    """Hold SIGTERM/SIGINT while loader workers start; one that arrives meanwhile reaches the stop flag right after."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
