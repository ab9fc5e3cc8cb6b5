"""The cross-experiment page (`lstmx report DIR DIR ...`, `lstmx.lab.overview`): one
row per experiment with its headline figure and finding and the conditions read
from its results; the experiment-file hooks ``LIMIT`` and ``headline``."""

import os
import re
import textwrap

import pandas as pd
import pytest

from lstmx.lab import cli, overview, runner
from lstmx.lab.experiment import Experiment, load

from helpers import cli_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two small experiments over the smoke config (2 steps a trial): the first names its
# limit and headline (restricted to length 5), the second relies on the defaults.
FAKE = textwrap.dedent('''
    """{description}"""
    import dataclasses
    import sys
    sys.path.insert(0, {experiments!r})
    import smoke
    from lstmx.lab import Preset
    NAME = {name!r}
    {extra}
    def presets():
      b = smoke.base()
      b = dataclasses.replace(b, train=dataclasses.replace(
          b.train, steps=2, log_every=1, eval_every=2, checkpoint_every=2, eval_batches=1,
          batch_size=4))
      return {{"tiny": Preset(b, {sweep})}}
    def figures(results, fig_dir):
      import matplotlib.pyplot as plt
      from lstmx.lab.report import save_figure
      out = []
      for stem in ("first", "second"):
        fig, ax = plt.subplots()
        ax.plot(results["final.validation.loss"])
        save_figure(fig, fig_dir, stem)
        out.append((f"The {{stem}} figure", stem))
      return out
    def findings(results):
      return [f"{name} holds in {{len(results)}} trials.", "a second | finding."]
    ''')
LONG = dict(name="fake_long", description="Fake long: lengths.",
            sweep='[{"meta.length": 3, "task.params.delay": 3}, '
                  '{"meta.length": 5, "task.params.delay": 5}]',
            extra=textwrap.dedent('''
                LIMIT = "long_range"
                def headline(results):
                  return {"figure": "second", "finding": "the long | headline",
                          "where": {"meta.length": 5}}
                '''))
PLAIN = dict(name="fake_plain", description="Fake plain: no hooks.",
             sweep='[{"model.hidden_size": 8}]', extra="")


def _run(tmp, spec):
  path = tmp / f"{spec['name']}.py"
  path.write_text(FAKE.format(experiments=os.path.join(ROOT, "experiments"), **spec))
  out = tmp / "runs" / spec["name"] / "tiny"
  runner.run(load(str(path)), "tiny", str(out), progress=False, cores_per_trial="all")
  return str(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("page")
  return tmp, _run(tmp, PLAIN), _run(tmp, LONG)


def _links(page: str) -> list[str]:
  return re.findall(r"\]\(([^)]+)\)", page)


def test_page_lists_each_experiment_with_headline_and_conditions(runs, capsys):
  tmp, plain, long = runs
  assert cli.main(["report", plain, long, plain + "/"]) == 0  # named twice, listed once
  path = tmp / "runs" / overview.DEFAULT_NAME  # the common parent of runs/NAME/tiny
  assert f"page: {path}" in capsys.readouterr().out
  page = path.read_text()
  assert page.startswith(f"# {overview.TITLE}")
  rows = [line for line in page.splitlines() if line.startswith("| **")]
  assert len(rows) == 2
  # LIMIT long_range comes first (known limits in their order, then the rest as given).
  assert rows[0].startswith("| **Long-range dependencies**") and "fake_long" in rows[0]
  assert "![The second figure](fake_long/tiny/figures/second.png)" in rows[0]
  assert "the long \\| headline" in rows[0]  # pipes escaped in the table
  # Conditions from the results, restricted to the headline's rows (length 5).
  assert "length: 5<br>" in rows[0] and "length: 3" not in rows[0]
  assert "tasks: copy" in rows[0] and "training steps: 2" in rows[0]
  assert "batch sizes: 4" in rows[0] and "hidden sizes: 32" in rows[0]
  assert "seeds per configuration: 1 (1 configurations, 1 finished trials)" in rows[0]
  assert re.search(r"devices: \d+ cpu<br>", rows[0]) and "preset: tiny" in rows[0]
  # Defaults: the title from the description, the first figure, the first finding.
  assert rows[1].startswith("| **Fake plain**")
  assert "![The first figure](fake_plain/tiny/figures/first.png)" in rows[1]
  assert "fake_plain holds in 1 trials." in rows[1]
  assert "hidden sizes: 8<br>" in rows[1] and "(1 configurations, 1 finished trials)" in rows[1]
  assert "\n- a second | finding.\n" in page  # every finding, in its section
  for link in _links(page):
    assert (path.parent / link).exists(), link


def test_page_rewrites_a_stale_report_and_links_only_existing_figures(runs):
  tmp, plain, long = runs
  out = tmp / "elsewhere" / "page.md"
  stale = os.path.join(plain, "report.json")
  os.remove(stale)
  os.remove(os.path.join(long, "figures", "first.png"))
  overview.write([long, plain], str(out))
  assert os.path.exists(stale)  # rewritten from the experiment file
  page = out.read_text()
  assert "../runs/fake_plain/tiny/figures/first.png" in page
  for link in _links(page):
    assert (out.parent / link).exists(), link
  section = page.split("## Long-range dependencies")[1].split("\n## ")[0]
  assert "fake_long/tiny/figures/second.png" in section
  assert "fake_long/tiny/figures/first.png" not in page


def test_bad_directories_name_the_argument(runs, tmp_path, capsys):
  _, plain, _ = runs
  (tmp_path / "empty").mkdir()
  (tmp_path / "file.txt").write_text("x")
  for bad, why in ((tmp_path / "empty", "has no experiment.json or results.csv"),
                   (tmp_path / "missing", "is not a directory"),
                   (tmp_path / "file.txt", "is not a directory")):
    error = cli_error(capsys, ["report", plain, str(bad)])
    assert error.startswith("lstmx report: DIR: expected an experiment's output "
                            "directory"), error
    assert repr(str(bad)) in error and why in error
  assert "DIR: expected an experiment's output directory" in cli_error(
      capsys, ["report", str(tmp_path / "empty")])  # the one-directory report too
  (tmp_path / "empty" / "experiment.json").write_text("{not json")
  (tmp_path / "empty" / "results.csv").write_text("trial\n")
  with pytest.raises(ValueError, match="DIR: expected .* unreadable JSON"):
    overview.check_output_dir(str(tmp_path / "empty"))


def test_conditions_fall_back_to_the_base_config():
  results = pd.DataFrame({"trial": ["a", "b", "c"], "status": ["completed"] * 2 + ["failed"],
                          "meta.length": [10, 1000, 7], "model.hidden_size": [64, None, 5],
                          "meta.study": [None, "devices", None],
                          "train.seed": [0, 0, 0]})
  meta = {"preset": "quick", "base": {"model": {"hidden_size": 128},
                                      "train": {"steps": 500, "batch_size": 32},
                                      "task": {"name": "copy"}}}
  got = dict(overview.conditions("/nonexistent", meta, results))
  assert got["length"] == "10, 1000"  # the failed trial's 7 is not a condition
  assert got["hidden sizes"] == "64, 128" and got["training steps"] == "500"
  assert got["tasks"] == "copy" and got["preset"] == "quick"
  assert got["study"] == "devices (1 of 2 trials)"
  assert got["seeds per configuration"] == "1 (2 configurations, 2 finished trials)"
  assert overview.describe_values(list(range(8, 16))) == "8 to 15 (8 values)"
  with pytest.raises(ValueError, match="group: expected columns"):
    overview.conditions("/nonexistent", meta, results, {"meta.nope": 1})


def test_headline_defaults_and_errors():
  figures, findings = [("A", "a"), ("B", "b")], ["one.", "two."]
  plain = Experiment(name="x", description="X: y")
  assert plain.limit == "x"
  assert plain.headline_of(None, figures, findings) == {
      "figure": "a", "title": "A", "finding": "one.", "where": {}}
  assert plain.headline_of(None, [], []) == {
      "figure": None, "title": None, "finding": None, "where": {}}
  chosen = Experiment(name="x", limit="compute",
                      headline=lambda r: {"figure": "b", "where": {"meta.h": 4}})
  assert chosen.headline_of(None, figures, findings) == {
      "figure": "b", "title": "B", "finding": "one.", "where": {"meta.h": 4}}
  for bad, match in (({"figure": "c"}, r"figure: expected one of .*\['a', 'b'\].*got 'c'"),
                     ({"stem": "a"}, "expected a dict with keys among"),
                     (["a"], "expected a dict with keys among"),
                     ({"where": "meta.h=4"}, r"where: expected a dict")):
    with pytest.raises(ValueError, match=match):
      Experiment(name="x", headline=lambda r, bad=bad: bad).headline_of(None, figures, [])


def test_a_bad_headline_is_noted_and_loses_nothing(tmp_path):
  from lstmx.lab import report
  from lstmx.train.rundir import read_json
  results = pd.DataFrame({"trial": ["a"], "status": ["completed"], "model.hidden_size": [8],
                          "final.validation.loss": [1.0]})
  exp = Experiment(name="x", findings=lambda r: ["one."],
                   headline=lambda r: {"figure": "nope"})
  text = open(report.write(exp, str(tmp_path), results)).read()
  assert "The headline for the cross-experiment page failed (ValueError" in text
  assert "- one." in text and "## Results" in text
  saved = read_json(str(tmp_path / "report.json"))
  assert saved["findings"] == ["one."] and saved["headline"] is None and saved["limit"] == "x"


def test_stopping_point_and_controls_columns_read_the_records():
  from lstmx.lab import findings, stats
  from lstmx.lab.findings import report_json
  ok = findings.Control("copy: tf", {"task.name": "copy"}, "paper", seeds=5, solved=5,
                        required=4)
  bad = findings.Control("mqar: tf", {"task.name": "mqar"}, "paper", seeds=5, solved=1,
                         required=4)
  stop = findings.Finding("s", "stops", "solved", stats.contrast(5, 5, 0, 5),
                          subject={"task": "adding", "model": "lstm"}, control="copy: tf")
  never = findings.Finding("n", "never_solved", "solved", stats.rate(0, 5),
                           subject={"task": "mqar"}, control="mqar: tf")

  def entry(records, controls):
    return {"report": report_json(findings.withhold(records, controls), controls)}

  e = entry([stop, never], [ok, bad])
  assert overview.stopping_point(e) == "task adding, model lstm"
  assert overview.controls_text(e) == "1/2 passed (5 seeds each); failed: mqar: tf"
  assert overview.stopping_point(entry([never], [bad])) == "withheld: a control failed"
  passed = findings.Control("mqar: tf", {}, "paper", seeds=5, solved=5, required=4)
  assert overview.stopping_point(entry([never], [passed])) == (
      "none within the budget; not solved at the shortest tried: task mqar")
  assert overview.stopping_point({"report": {}}).startswith("not assessed")
  assert overview.controls_text({"report": {}}) == "none"
  rows = overview._by_limit([{"limit": "compute", "n": 1}, {"limit": "long_range", "n": 2},
                             {"limit": "compute", "n": 3}])
  assert [[e["n"] for e in g] for g in rows] == [[1, 3], [2]]  # one row per limit
