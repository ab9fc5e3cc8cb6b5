"""Results that survive faults (issue 18): atomic writes, one JSON reader naming the
path, finished runs whose summary is lost rebuilt from the checkpoint, damaged
trials retried without stopping a sweep or dropping rows, provenance that cannot
lie, and a fault-injection sweep (every file truncated, emptied or deleted)."""

import dataclasses
import json
import os
import re
import shutil
import sys

import pandas as pd
import pytest

from lstmx.config import override
from lstmx.lab import runner
from lstmx.lab.experiment import Experiment, Preset
from lstmx.train import train_and_evaluate
from lstmx.train.rundir import CorruptRecord, MetricsLog, atomic_write, read_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import smoke  # noqa: E402


def _tiny(steps: int = 10):
  cfg = override(smoke.base(), [f"train.steps={steps}", "train.checkpoint_every=5",
                                "train.eval_every=5", "train.log_every=5",
                                "train.eval_batches=1", "train.batch_size=8",
                                "model.hidden_size=8", "train.progress=false"])
  return cfg


def _experiment(n: int = 2) -> Experiment:
  sweep = [{"train.seed": s} for s in range(n)]
  return Experiment(name="fake", presets=lambda: {"tiny": Preset(_tiny(), sweep)})


KEY = ["trial", "status", "steps", "final.validation.loss", "final.test.loss"]


# --- the one writer and the one reader ---------------------------------------------------

def test_atomic_write_leaves_old_file_when_the_writer_fails(tmp_path):
  path = tmp_path / "results.csv"
  atomic_write(str(path), "old\n")

  def bad(f):
    f.write("half a ta")
    raise RuntimeError("killed")

  with pytest.raises(RuntimeError):
    atomic_write(str(path), bad)
  assert path.read_text() == "old\n"
  assert os.listdir(tmp_path) == ["results.csv"]  # no temporary file left behind


@pytest.mark.parametrize("text", ['{"status": "compl', "", "\x00\x00"])
def test_read_json_names_the_path(tmp_path, text):
  path = tmp_path / "summary.json"
  path.write_text(text)
  with pytest.raises(CorruptRecord, match=str(path)) as e:
    read_json(str(path))
  assert isinstance(e.value, ValueError) and e.value.path == str(path)


def test_metrics_log_torn_last_line_is_harmless(tmp_path):
  log = MetricsLog(str(tmp_path))
  log.write(5, "train", 0.1, {"loss": 1.0})
  log.write(10, "train", 0.2, {"loss": 0.5})
  with open(log.path, "a") as f:
    f.write('{"step": 15, "split": "tr')  # a kill mid-append
  assert [r["step"] for r in log.read_lines()] == [5, 10]
  log.write(15, "train", 0.3, {"loss": 0.4})  # appended after the torn line
  assert [r["step"] for r in log.read_lines()] == [5, 10, 15]
  log.truncate_after(10)
  assert [json.loads(x)["step"] for x in open(log.path)] == [5, 10]


# --- a finished run whose summary is lost -------------------------------------------------

@pytest.mark.parametrize("damage", ["delete", "truncate", "empty_object"])
def test_finished_run_rebuilds_lost_summary_from_checkpoint(tmp_path, damage, capfd):
  """Before: "Checkpoint for step 10 already exists" on every rerun (delete), a
  JSONDecodeError naming no file (truncate), KeyError 'status' in a sweep ({})."""
  cfg = _tiny()
  first = train_and_evaluate(cfg, str(tmp_path))
  path = tmp_path / "summary.json"
  if damage == "delete":
    path.unlink()
  elif damage == "truncate":
    path.write_text(path.read_text()[:11])
  else:
    path.write_text("{}")
  rebuilt = train_and_evaluate(cfg, str(tmp_path))
  assert rebuilt["status"] == "completed" and rebuilt["steps"] == 10
  assert rebuilt["final"] == first["final"]  # re-evaluated from the checkpoint
  assert rebuilt["wall_time"] == first["wall_time"] and rebuilt["rebuilt_from_checkpoint"] == 10
  assert read_json(str(path))["final"] == first["final"]
  if damage != "delete":
    assert str(path) in capfd.readouterr().err
  # and the rebuilt summary is what the next rerun returns, untouched
  assert train_and_evaluate(cfg, str(tmp_path)) == read_json(str(path))


def test_early_stopped_run_rebuilds_summary(tmp_path):
  cfg = override(_tiny(20), ["optimizer.lr=1e-12", "train.patience=1", "train.min_delta=1.0"])
  first = train_and_evaluate(cfg, str(tmp_path))
  assert first["status"] == "early_stopped"
  os.remove(tmp_path / "summary.json")
  rebuilt = train_and_evaluate(cfg, str(tmp_path))
  assert (rebuilt["status"], rebuilt["steps"], rebuilt["final"], rebuilt["best"]) == (
      first["status"], first["steps"], first["final"], first["best"])


# --- damaged checkpoints -------------------------------------------------------------------

@pytest.mark.parametrize("target", ["meta/metadata", "_CHECKPOINT_METADATA", "state/_METADATA",
                                    "state/manifest.ocdbt"])
def test_damaged_latest_checkpoint_without_summary_resumes_from_older(tmp_path, target, capfd):
  """Before: a JSONDecodeError naming no path (meta/metadata) and no recovery."""
  cfg = _tiny()
  first = train_and_evaluate(cfg, str(tmp_path))
  os.remove(tmp_path / "summary.json")
  path = tmp_path / "checkpoints" / "latest" / "10" / target
  path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
  again = train_and_evaluate(cfg, str(tmp_path))
  assert again["status"] == "completed" and again["final"] == first["final"]
  err = capfd.readouterr().err
  if "rebuilt_from_checkpoint" not in again:  # the damage was noticed: reported with its path
    assert os.path.join(str(tmp_path), "checkpoints", "latest", "10") in err


# --- provenance ----------------------------------------------------------------------------

def test_force_with_changed_config_retrains_from_scratch(tmp_path):
  """Before: `--force --set optimizer.lr=0.5` returned the old summary and wrote
  lr=0.5 into config.json."""
  cfg = _tiny()
  old = train_and_evaluate(cfg, str(tmp_path / "run"))
  new_cfg = override(cfg, ["optimizer.lr=0.5"])
  with pytest.raises(ValueError, match=r"differs at \['optimizer.lr'\]"):
    train_and_evaluate(new_cfg, str(tmp_path / "run"))
  forced = train_and_evaluate(new_cfg, str(tmp_path / "run"), force=True)
  fresh = train_and_evaluate(new_cfg, str(tmp_path / "fresh"))
  assert forced["final"] == fresh["final"] != old["final"]
  assert read_json(str(tmp_path / "run" / "config.json"))["optimizer"]["lr"] == 0.5
  rows = lambda d: [(r["step"], r["split"], r["loss"]) for r in map(  # noqa: E731
      json.loads, open(tmp_path / d / "metrics.jsonl"))]
  assert rows("run") == rows("fresh")


def test_force_with_fewer_steps_retrains(tmp_path):
  cfg = _tiny()
  train_and_evaluate(cfg, str(tmp_path))
  fewer = train_and_evaluate(override(cfg, ["train.steps=5"]), str(tmp_path), force=True)
  assert fewer["steps"] == 5  # before: the 10-step summary, labelled steps=5 in config.json


def test_sweep_rerun_with_other_sets_is_refused_or_retrained(tmp_path):
  """Before: the old results were reused while experiment.json recorded the new --set."""
  exp, out = _experiment(), str(tmp_path)
  first = runner.run(exp, "tiny", out, progress=False, report=False)
  meta = read_json(os.path.join(out, "experiment.json"))
  with pytest.raises(ValueError, match=r"optimizer\.lr") as e:
    runner.run(exp, "tiny", out, ["optimizer.lr=0.5"], progress=False, report=False)
  assert "base differs at ['optimizer.lr']" in str(e.value)
  assert read_json(os.path.join(out, "experiment.json")) == meta  # untouched
  forced = runner.run(exp, "tiny", out, ["optimizer.lr=0.5"], progress=False,
                      report=False, force=True)
  assert read_json(os.path.join(out, "experiment.json"))["sets"] == ["optimizer.lr=0.5"]
  assert list(forced["trial"]) == list(first["trial"])
  assert (forced["final.validation.loss"] != first["final.validation.loss"]).all()


# --- damaged trials in a sweep ---------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("sweep") / "out")
  results = runner.run(_experiment(), "tiny", out, progress=False)
  return out, results


def _rerun(src, dst):
  shutil.copytree(src, dst)
  return dst


def test_damaged_summaries_never_stop_the_sweep_or_drop_rows(finished_sweep, tmp_path, capfd):
  """Before: a truncated summary stopped the sweep ("Unterminated string", no file named)
  and left results.csv with the rows before it; `{}` gave KeyError 'status'."""
  src, results = finished_sweep
  out = _rerun(src, str(tmp_path / "out"))
  tids = list(results["trial"])
  s0 = os.path.join(out, "trials", tids[0], "summary.json")
  s1 = os.path.join(out, "trials", tids[1], "summary.json")
  with open(s0, "r+") as f:
    f.truncate(11)
  with open(s1, "w") as f:
    f.write("{}")
  again = runner.run(_experiment(), "tiny", out, progress=False)
  err = capfd.readouterr().err
  assert s0 in err and s1 in err
  pd.testing.assert_frame_equal(again[KEY], results[KEY])
  pd.testing.assert_frame_equal(pd.read_csv(os.path.join(out, "results.csv"))[KEY],
                                results[KEY])


def _files(root):
  out = []
  for d, _, names in os.walk(root):
    out += [os.path.relpath(os.path.join(d, n), root) for n in names]
  return sorted(out)


def _kind(rel):
  if "checkpoints" in rel.split(os.sep):
    return "checkpoint"
  return os.path.basename(rel)


def test_fault_injection_every_file_of_a_finished_sweep(finished_sweep, tmp_path):
  """Each file of a finished sweep truncated, emptied or deleted in turn (rotating the
  three, every one on the summaries): the rerun finishes with every trial's row and
  the same results (a trial's damaged config.json: after a refusal, with force)."""
  src, results = finished_sweep
  files = _files(src)
  kinds = {_kind(f) for f in files}
  assert {"summary.json", "config.json", "metrics.jsonl", "checkpoint", "results.csv",
          "experiment.json", "report.md"} <= kinds
  cases = []
  for i, rel in enumerate(files):
    modes = (["truncate", "empty", "delete"] if _kind(rel) == "summary.json"
             else [("truncate", "empty", "delete")[i % 3]])
    cases += [(rel, m) for m in modes]
  for n, (rel, mode) in enumerate(cases):
    out = _rerun(src, str(tmp_path / str(n)))
    path = os.path.join(out, rel)
    if mode == "delete":
      os.remove(path)
    else:
      data = open(path, "rb").read()
      with open(path, "wb") as f:
        f.write(data[:len(data) // 2] if mode == "truncate" else b"")
    try:
      if _kind(rel) == "config.json" and "trials" in rel.split(os.sep):
        # a trial's settings unknown: refused, naming the file; retrained with force
        with pytest.raises(ValueError, match=re.escape(path)):
          runner.run(_experiment(), "tiny", out, progress=False)
        again = runner.run(_experiment(), "tiny", out, progress=False, force=True)
      else:
        again = runner.run(_experiment(), "tiny", out, progress=False)
    except Exception as e:
      raise AssertionError(f"{mode} {rel}: {type(e).__name__}: {e}") from e
    table = pd.read_csv(os.path.join(out, "results.csv"))
    for t in (again, table):
      pd.testing.assert_frame_equal(t[KEY], results[KEY], obj=f"{mode} {rel}")
    shutil.rmtree(out)


def test_config_written_before_a_field_was_added_still_matches():
  """A run directory whose config.json predates a new field (its default applies)
  resumes; a real change is still refused."""
  from lstmx.config import Config, override
  from lstmx.train.rundir import config_diff, config_dict
  config = override(Config(), ["train.steps=7"])
  old = config_dict(config)
  del old["train"]["diverge_factor"], old["train"]["diverge_patience"]
  assert config_diff(old, config_dict(config)) == []
  changed = override(config, ["train.diverge_factor=3.0"])
  assert config_diff(old, config_dict(changed)) == ["train.diverge_factor"]
