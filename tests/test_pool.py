"""The pool's trial spec: plain data that rebuilds the same config where the trial runs."""

import dataclasses
import pathlib

import pytest

from lstmx.config import Config, from_dict
from lstmx.lab import sweep as sweeps
from lstmx.lab.experiment import load
from lstmx.lab.pool import SerialPool, TrialSpec

EXPERIMENTS = sorted(str(p) for p in (pathlib.Path(__file__).parents[1] / "experiments").glob(
    "*.py") if p.stem != "smoke")


@pytest.mark.parametrize("path", EXPERIMENTS)
def test_spec_rebuilds_every_trial_config(path):
  exp = load(path)
  for preset in exp.presets().values():
    for ov in preset.sweep:
      config = sweeps.apply(preset.base, ov)
      spec = TrialSpec.make(sweeps.trial_id(ov), exp, config, "unused")
      assert from_dict(Config, spec.config) == config
      assert spec.experiment == exp.path


def test_serial_pool_yields_each_spec_with_its_summary(monkeypatch):
  import lstmx.lab.pool as pool
  seen = []
  monkeypatch.setattr(pool, "run_trial", lambda exp, config, workdir, force: (
      seen.append(workdir) or {"status": "completed", "name": config.name}))
  base = Config()
  specs = [TrialSpec.make(str(i), load(EXPERIMENTS[0]),
                          dataclasses.replace(base, name=f"n{i}"), f"w{i}") for i in range(3)]
  out = list(SerialPool().run(specs))
  assert [s.trial for s, _ in out] == ["0", "1", "2"]
  assert [summary["name"] for _, summary in out] == ["n0", "n1", "n2"] and seen == ["w0", "w1", "w2"]
