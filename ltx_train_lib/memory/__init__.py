"""Memory: plan a run's peak GPU memory and RAM before loading anything, fit it to a budget, and measure.

- :mod:`.plan` the plan per phase (:func:`~.plan.make_plan`), from :mod:`.weights` (exact bytes of weights,
  gradients and optimizer state) and the family's :mod:`.profile` (architecture on the meta device, activations);
- :mod:`.budget` ``memory.budget_gb``: the cheapest recipe that fits, or a refusal naming what would fit;
- :mod:`.report` the plan as a table or a line; :mod:`.command` ``scripts/train.py CONFIG --plan``;
- :mod:`.measure` and :mod:`.calibrate` what a step really keeps (tests, calibration, benchmarks).

Block swapping itself lives with the training code (:mod:`ltx_train_lib.training.block_swap`).
"""
