"""Smoke: a tiny copy task that trains in seconds on a CPU; the first example.

    lstmx train experiments/smoke.py --workdir runs/smoke
    lstmx train experiments/smoke.py:chrono --workdir runs/smoke_chrono --set train.steps=200
"""

import dataclasses

from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig


def base() -> Config:
  return Config(
      name="smoke",
      model=ModelConfig(hidden_size=32),
      task=TaskConfig(name="copy", params={"delay": 10, "num_symbols": 3, "num_categories": 4}),
      optimizer=OptimizerConfig(name="adam", lr=1e-2),
      train=TrainConfig(steps=60, batch_size=16, log_every=10, eval_every=20, eval_batches=2,
                        checkpoint_every=10),
  )


def chrono() -> Config:
  cfg = base()
  return dataclasses.replace(cfg, name="smoke_chrono", model=dataclasses.replace(
      cfg.model, init="chrono", chrono_max_length=16))


VARIANTS = {"base": base, "chrono": chrono}
