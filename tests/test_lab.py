"""lstmx.lab and the config layer: the one dotted-path setter (strings and values),
per-model configs (kind switching, round trips), the experiment protocol and
``lstmx train`` on an experiment file."""

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from lstmx import models
from lstmx.config import Config, ModelConfig, from_dict, override, set_path, to_dict
from lstmx.lab import cli, sweep
from lstmx.lab.experiment import Experiment, Preset, load

from helpers import cli_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "experiments", "smoke.py")
LONG = os.path.join(ROOT, "experiments", "long_dependency.py")


def test_one_setter_parses_strings_and_checks_values():
  by_string = set_path(Config(), "optimizer.lr", "3e-3", parse=True)
  by_value = set_path(Config(), "optimizer.lr", 3e-3)
  assert by_string == by_value and by_value.optimizer.lr == 0.003
  assert set_path(Config(), "optimizer.lr", 1).optimizer.lr == 1.0  # int for a float
  assert set_path(Config(), "optimizer.clip_norm", "none", parse=True).optimizer.clip_norm is None
  assert set_path(Config(), "task.params.delay", "50", parse=True).task.params == {"delay": 50}
  assert set_path(Config(), "task.params.delay", 50).task.params == {"delay": 50}
  assert set_path(Config(), "model.regularization.zoneout_h", 0.25).model.regularization.zoneout_h \
      == set_path(Config(), "model.regularization.zoneout_h", "0.25", parse=True) \
      .model.regularization.zoneout_h == 0.25
  # The two sources keep their own error wording.
  with pytest.raises(ValueError, match=r"--set train.steps: expected a value of type int; "
                                       r"got '1.5'"):
    set_path(Config(), "train.steps", "1.5", parse=True)
  with pytest.raises(ValueError, match=r"sweep key 'train.steps': expected int; got 1.5"):
    set_path(Config(), "train.steps", 1.5)
  with pytest.raises(ValueError, match=r"--set optimizer.lrr: unknown key 'lrr'"):
    set_path(Config(), "optimizer.lrr", "1", parse=True)
  with pytest.raises(ValueError, match=r"sweep key 'optimizer.lrr': unknown field 'lrr'"):
    set_path(Config(), "optimizer.lrr", 1)
  with pytest.raises(ValueError, match=r"--set train.steps.x: int has no field 'x'"):
    set_path(Config(), "train.steps.x", "1", parse=True)


def test_override_and_apply_agree():
  sets = ["model.kind=gru", "model.hidden_size=16", "train.seed=3", "task.params.delay=7"]
  values = {"model.kind": "gru", "model.hidden_size": 16, "train.seed": 3,
            "task.params.delay": 7, "meta.label": "ignored"}
  assert override(Config(), sets) == sweep.apply(Config(), values)


def test_model_kind_switches_dataclass_and_carries_shared_fields():
  cfg = override(Config(), ["model.hidden_size=24", "model.num_layers=2",
                            "model.compute_dtype=bfloat16", "model.unroll=4"])
  gru = set_path(cfg, "model.kind", "gru")
  assert isinstance(gru.model, models.GRUConfig)
  assert (gru.model.hidden_size, gru.model.num_layers, gru.model.compute_dtype,
          gru.model.unroll) == (24, 2, "bfloat16", 4)  # fields both kinds have
  tr = set_path(cfg, "model.kind", "transformer")
  assert isinstance(tr.model, models.TransformerConfig) and tr.model.hidden_size == 24
  assert tr.model.num_heads == models.TransformerConfig().num_heads
  back = set_path(tr, "model.kind", "lstm")
  assert back.model == models.LSTMConfig(hidden_size=24, num_layers=2, compute_dtype="bfloat16")
  assert set_path(cfg, "model.kind", "lstm") == cfg
  # model.kind is applied first within one override dict or --set list.
  ov = {"model.num_heads": 2, "model.hidden_size": 8, "model.kind": "transformer"}
  assert sweep.apply(Config(), ov).model == models.TransformerConfig(hidden_size=8, num_heads=2)
  assert override(Config(), ["model.num_heads=2", "model.kind=transformer"]).model.num_heads == 2


def test_kind_specific_key_on_wrong_kind_names_key_and_kind():
  with pytest.raises(ValueError, match=r"--set model.num_heads: 'num_heads' is not a field of "
                                       r"model.kind='lstm'; expected one of \[.*'init'"):
    override(Config(), ["model.num_heads=2"])
  with pytest.raises(ValueError, match=r"sweep key 'model.init': 'init' is not a field of "
                                       r"model.kind='gru'"):
    sweep.apply(Config(), {"model.kind": "gru", "model.init": "chrono"})
  with pytest.raises(ValueError, match=r"model.image_shape: 'image_shape' is not a field of "
                                       r"model.kind='mlp'"):
    ModelConfig(kind="mlp", image_shape=(8, 8, 1))
  with pytest.raises(ValueError, match=r"--set model.kind: model.kind: expected one of "
                                       r"\('lstm', .*got 'rnn'"):
    override(Config(), ["model.kind=rnn"])
  with pytest.raises(ValueError, match=r"LSTMConfig is kind 'lstm'; got 'gru'"):
    dataclasses.replace(ModelConfig(), kind="gru")


def test_model_config_builds_each_kinds_dataclass():
  assert type(ModelConfig()) is models.LSTMConfig
  assert type(ModelConfig(hidden_size=64)) is models.LSTMConfig
  assert isinstance(ModelConfig(kind="transformer", num_heads=2), models.TransformerConfig)
  for kind in models.MODELS:
    cfg = ModelConfig(kind=kind)
    assert isinstance(cfg, ModelConfig) and cfg.kind == kind
    assert type(cfg) is models.KINDS.get(kind).config


@pytest.mark.parametrize("kind", models.MODELS)
def test_config_round_trips_per_kind(kind, tmp_path):
  extra = {"lstm": {"init": "chrono", "chrono_max_length": 9},
           "gru": {"bidirectional": True}, "transformer": {"num_heads": 2, "causal": False},
           "tcn": {"kernel_size": 2}, "cnn2d": {"image_shape": (4, 4, 1)},
           "mlp": {"activation": "gelu"}, "minlstm": {"parallel": False},
           "mingru": {"parallel": False}}[kind]
  cfg = Config(model=ModelConfig(kind=kind, hidden_size=8, **extra))
  path = tmp_path / "config.json"
  path.write_text(json.dumps(to_dict(cfg)))
  back = from_dict(Config, json.loads(path.read_text()))
  assert back == cfg and type(back.model) is type(cfg.model)


def test_experiment_protocol_defaults():
  smoke = load(SMOKE)
  assert smoke.name == "smoke" and smoke.choices() == ("variant", ("base", "chrono"))
  assert smoke.config().name == "smoke" and smoke.config("chrono").model.init == "chrono"
  assert smoke.figures(None, "x") == [] and smoke.findings(None) == [] and smoke.analyze is None
  long = load(LONG)
  assert long.choices() == ("preset", ("tiny", "quick", "full"))
  assert long.config() == long.presets()["quick"].base
  assert long.config("tiny") == long.presets()["tiny"].base
  with pytest.raises(ValueError, match=r"preset: expected one of \('tiny', 'quick', 'full'\)"
                                       r".*got 'base'"):
    long.config("base")
  exp = Experiment(name="inline", presets=lambda: {"tiny": Preset(Config(), [{}])})
  assert exp.config("tiny") == Config()


def test_train_variant_errors_list_the_choices(capsys):
  assert re.match(r"lstmx: variant: expected one of \('base', 'chrono'\).*got 'nope'$",
                  cli_error(capsys, ["train", f"{SMOKE}:nope", "--workdir", "w"]))
  assert cli_error(capsys, ["train", f"{SMOKE}:chrno", "--workdir", "w"]).endswith(
      "got 'chrno' (did you mean 'chrono'?)")
  assert re.match(r"lstmx: preset: expected one of \('tiny', 'quick', 'full'\)",
                  cli_error(capsys, ["train", f"{LONG}:nope", "--workdir", "w"]))
  assert "does not exist" in cli_error(capsys, ["train", "no/such/file.py", "--workdir", "w"])
  assert re.match(r"lstmx train: expected --workdir DIR .* or --preset NAME",
                  cli_error(capsys, ["train", LONG]))
  assert "expected one of them" in cli_error(capsys, ["train", f"{LONG}:tiny", "--preset",
                                                      "tiny"])
  assert cli.resolve_config(f"{LONG}:tiny", ["train.steps=3"]).train.steps == 3


def test_usage_errors_exit_2_with_a_guess_and_version_prints(capsys):
  assert cli_error(capsys, ["trian", SMOKE]) == (
      "lstmx: unknown command 'trian'; expected one of train, report, info, bench "
      "(did you mean 'train'?)")
  assert "--wrkdir w (did you mean '--workdir'?)" in cli_error(
      capsys, ["train", SMOKE, "--wrkdir", "w"])
  assert "(did you mean 'hidden_size'?)" in cli_error(
      capsys, ["train", SMOKE, "--workdir", "w", "--set", "model.hiden_size=3"])
  assert "--out: expected only with --preset" in cli_error(
      capsys, ["train", SMOKE, "--workdir", "w", "--out", "o"])
  with pytest.raises(SystemExit) as e:  # argparse's own error, with the guess
    cli.main(["train", LONG, "--preset", "quik"])
  assert e.value.code == 2
  assert "got 'quik' (did you mean 'quick'?)" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    cli.main(["--version"])
  assert e.value.code == 0
  assert re.fullmatch(r"lstmx \d+\.\d+\.\d+\S* \(jax \S+\)\n", capsys.readouterr().out)


def test_lstmx_train_prints_validations_then_a_table_of_final_metrics(tmp_path, capsys):
  assert cli.main(["train", SMOKE, "--workdir", str(tmp_path), "--set", "train.steps=4",
                   "--set", "train.eval_every=2", "--set", "train.log_every=2"]) == 0
  out = capsys.readouterr().out.splitlines()
  assert [line.split(" loss=")[0].split(" accuracy=")[0] for line in out
          if line.startswith("validation step")] == ["validation step 2/4",
                                                     "validation step 4/4"]
  end = out.index("completed after 4 steps (reached 4 steps)")
  assert out[end + 1].split()[0] == "split" and "loss" in out[end + 1].split()
  assert [line.split()[0] for line in out[end + 2:end + 5]] == ["train", "validation", "test"]
  assert out[-1].startswith(f"run directory: {tmp_path}")
  assert "examples" not in "\n".join(out)  # a count: in summary.json, not on screen
  assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_every_option_has_help_with_an_example():
  ap = cli.parser()
  subs = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
  own = {"train": ("--workdir", "--preset", "--out", "--set", "--force", "--coordinator",
                   "--num-processes", "--process-id"),
         "report": ("--out",), "info": ("--json",)}
  for name, options in own.items():
    for action in subs.choices[name]._actions:
      if set(action.option_strings) & set(options) or (not action.option_strings
                                                       and action.dest != "help"):
        assert action.help and "e.g." in action.help, (name, action.dest)


def test_bench_runs_benchmarks_bench_or_says_how(tmp_path, capsys, monkeypatch):
  assert cli.find_bench([tmp_path]) is None
  script = tmp_path / "benchmarks" / "bench.py"
  script.parent.mkdir()
  script.write_text("def main(argv, prog):\n  assert prog == \"lstmx bench\"\n  return 40 + len(argv)\n")
  assert cli.find_bench([tmp_path / "elsewhere", tmp_path]) == script
  monkeypatch.setattr(cli, "find_bench", lambda roots=None: script)
  assert cli.main(["bench", "--grid", "2,3,4"]) == 42  # main(argv) of benchmarks/bench.py
  monkeypatch.setattr(cli, "find_bench", lambda roots=None: None)  # an installed wheel
  assert cli.main(["bench", "--help"]) == 2
  assert "python benchmarks/bench.py" in capsys.readouterr().err


TWO_TRIALS = """
import sys
sys.path.insert(0, {experiments!r})
import smoke
from lstmx.config import override
from lstmx.lab import Preset
NAME = "two_trials"
def presets():
  base = override(smoke.base(), ["train.steps=4", "train.eval_every=4", "train.log_every=2",
                                 "train.checkpoint_every=4", "train.eval_batches=1",
                                 "train.batch_size=4", "model.hidden_size=4"])
  return {{"tiny": Preset(base, [{{"optimizer.lr": 1e-2}}, {{"optimizer.lr": 1e-3}}])}}
"""


def test_lstmx_train_runs_an_experiment_files_sweep(tmp_path):
  """The command line of a sweep, in a process of its own, with its default workers (the
  experiments' tiny presets run end to end in tests/test_experiment.py)."""
  out = tmp_path / "out"
  script = tmp_path / "two_trials.py"
  script.write_text(TWO_TRIALS.format(experiments=os.path.join(ROOT, "experiments")))
  env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=ROOT)
  cmd = [sys.executable, "-m", "lstmx", "train", str(script), "--preset", "tiny", "--out",
         str(out)]
  done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "results:" in done.stdout and "report:" in done.stdout
  results = pd.read_csv(out / "results.csv")
  assert len(results) == 2 and (results["status"] == "completed").all()
  meta = json.loads((out / "experiment.json").read_text())
  assert meta["name"] == "two_trials" and meta["preset"] == "tiny"
  assert meta["experiment"] == str(script)
  assert meta["sweep"]["cores_per_trial"] == 1 and meta["sweep"]["workers"] == "auto"
  assert (out / "report.md").exists()


def test_a_sweep_whose_every_trial_fails_still_writes_its_report(tmp_path):
  """Issue 18: every trial failing used to crash in the experiment's figures()
  (KeyError: 0) and write no report."""
  from lstmx.lab import runner
  results = runner.run(load(LONG), "tiny", str(tmp_path), ["task.params.bogus=1"],
                       progress=False)
  assert (results["status"] == "failed").all() and len(results) > 1
  report = (tmp_path / "report.md").read_text()
  assert "No trial finished" in report and "## Failed trials" in report
  assert "unknown parameter" in report


@pytest.mark.parametrize("args", [["--workdir", "{blocked}/run"],
                                  ["--preset", "tiny", "--out", "{blocked}/out"]])
def test_an_output_directory_that_cannot_be_written_is_one_line(tmp_path, capsys, args):
  """Issue 18: a read-only output directory gave a traceback. (Root writes through
  read-only modes, so a regular file stands in the way of the directory instead.)"""
  blocked = tmp_path / "a_file"
  blocked.write_text("")
  spec = SMOKE if args[0] == "--workdir" else LONG
  argv = ["train", spec] + [a.format(blocked=blocked) for a in args]
  message = cli_error(capsys, argv, code=1)  # a failed run (or sweep): exit 1
  assert message.startswith("lstmx: ") and "cannot write" in message and "\n" not in message
