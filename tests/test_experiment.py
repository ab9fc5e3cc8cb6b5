"""Sweeps, the sweep runner and reports: every experiment expands and builds, the
tiny presets run end to end, a killed sweep resumes without losing or repeating
trials, and failures and divergences are recorded."""

import glob
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from lstmx import models, tasks
from lstmx.lab import runner, sweep
from lstmx.config import Config
from lstmx.tasks.datasets import resolve_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = sorted(p for p in glob.glob(os.path.join(ROOT, "experiments", "*.py"))
                     if "smoke" not in p)


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_sweep_primitives():
  p = sweep.product({"a.b": [1, 2], "c": ["x", "y", "z"]})
  assert len(p) == 6 and p[0] == {"a.b": 1, "c": "x"} and p[-1] == {"a.b": 2, "c": "z"}
  z = sweep.zip_({"a": [1, 2], "b": [3, 4]})
  assert z == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
  assert len(sweep.chain(p, z)) == 8
  assert len(sweep.seeds(z, 3)) == 6 and sweep.seeds(z, 3)[1]["train.seed"] == 1
  with pytest.raises(ValueError, match="expected lists of one length"):
    sweep.zip_({"a": [1], "b": [1, 2]})
  assert sweep.trial_id({"a": 1, "b": 2}) == sweep.trial_id({"b": 2, "a": 1})


def test_apply_sets_typed_values_and_rejects_bad_keys():
  cfg = sweep.apply(Config(), {"optimizer.lr": 1, "task.params.delay": 7, "meta.label": "x"})
  assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
  assert cfg.task.params == {"delay": 7}
  with pytest.raises(ValueError, match="unknown field 'lrr'"):
    sweep.apply(Config(), {"optimizer.lrr": 1})
  with pytest.raises(ValueError, match="expected int; got 'many'"):
    sweep.apply(Config(), {"train.steps": "many"})


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_every_preset_expands_and_every_config_builds(path):
  module = _load(path)
  for name, preset in module.presets().items():
    ids = [sweep.trial_id(ov) for ov in preset.sweep]
    assert len(ids) == len(set(ids)) and ids, name
    for ov in preset.sweep:
      cfg = sweep.apply(preset.base, ov)
      task = tasks.make(cfg.task.name, **resolve_params(cfg.task.params, cfg.train.seed))
      if name == "tiny":  # building every full-size model would be slow
        models.build(cfg.model, task.input_size, task.output_size, seed=0,
                     max_length=task.length)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_tiny_preset_end_to_end(path, tmp_path):
  module = _load(path)
  # In this process (every core): the pool and its pinned workers are tests/test_workers.py's.
  results = runner.run(module, "tiny", str(tmp_path), progress=False, cores_per_trial="all")
  assert len(results) == len(module.presets()["tiny"].sweep)
  assert (results["status"] != "failed").all(), results[["trial", "error"]]
  assert (tmp_path / "results.csv").exists() and (tmp_path / "report.md").exists()
  assert glob.glob(str(tmp_path / "figures" / "*.png"))
  assert glob.glob(str(tmp_path / "figures" / "*.svg"))
  report = (tmp_path / "report.md").read_text()
  assert "## Results" in report and "figures/" in report
  assert "headline for the cross-experiment page failed" not in report, report


FAKE = textwrap.dedent('''
    """A fake experiment for runner tests."""
    import sys
    sys.path.insert(0, {experiments!r})
    import smoke
    from lstmx.config import override
    from lstmx.experiment import Preset, main
    NAME = "fake"
    def presets():
      base = override(smoke.base(), ["train.steps=40", "train.checkpoint_every=5"])
      sweep = [{{"train.seed": s}} for s in range(4)] + [{{"optimizer.lr": float("inf"),
               "optimizer.clip_norm": None, "train.seed": 9}}]
      return {{"tiny": Preset(base, sweep), "quick": Preset(base, sweep),
               "full": Preset(base, sweep)}}
    if __name__ == "__main__":
      main(sys.modules[__name__])
    ''')


def test_killed_sweep_resumes_without_losing_or_repeating(tmp_path):
  script = tmp_path / "fake.py"
  script.write_text(FAKE.format(experiments=os.path.join(ROOT, "experiments")))
  out = tmp_path / "out"
  cmd = [sys.executable, str(script), "--preset", "tiny", "--out", str(out)]
  env = dict(os.environ, XLA_FLAGS="")
  victim = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while time.time() < deadline and victim.poll() is None:
    if len(glob.glob(str(out / "trials" / "*" / "summary.json"))) >= 2:
      break
    time.sleep(0.05)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  subprocess.run(cmd, env=env, check=True, capture_output=True)
  results = pd.read_csv(out / "results.csv")
  assert len(results) == 5 and results["trial"].is_unique
  assert sorted(results["status"]) == ["completed"] * 4 + ["diverged"]
  # A third run trains nothing more and gives the same table.
  before = {p: os.path.getmtime(p) for p in glob.glob(str(out / "trials/*/summary.json"))}
  subprocess.run(cmd, env=env, check=True, capture_output=True)
  after = {p: os.path.getmtime(p) for p in glob.glob(str(out / "trials/*/summary.json"))}
  assert before == after
  pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), results)
