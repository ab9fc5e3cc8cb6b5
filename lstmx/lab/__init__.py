"""The lab: experiments, sweeps, reports and the command line, above the training engine.

* `lstmx.lab.experiment`: the experiment protocol (`Experiment`, `Preset`, `load`);
* `lstmx.lab.sweep`: sweeps as data (`product`, `zip_`, `chain`, `seeds`, `apply`);
* `lstmx.lab.options`: how a sweep runs (`SweepOptions`: workers, cores per trial,
  seeds, Ray, ...), checked once; `lstmx.lab.runner`: the sweep runner (`run`);
  `lstmx.lab.command`: its command line (`main`: an experiment file's);
* `lstmx.lab.pool`, `trial`, `local_pool`, `ray_pool`: where trials run (`TrialSpec`,
  `execute`; in this process, in worker processes, as Ray tasks); `lock`, `progress`:
  one runner per output directory, the sweep's progress line;
* `lstmx.lab.aggregate`: the per-configuration summary over seeds (``summary.csv``:
  each metric's centre and 95 % interval by its kind, `lstmx.lab.quantities`) and seed
  counts for findings;
* `lstmx.lab.stats`, `across_tasks`: statistics that fit each quantity, as records
  (exact rate intervals, Fisher contrasts, bounded bootstrap intervals, censored
  medians, sign tests, ratios; IQM and probability of improvement across tasks);
  `lstmx.lab.findings`: findings and controls as records, ``render`` (their English),
  ``withhold``, ``pick``, ``to_json``; `lstmx.lab.selection`: a learning rate per
  configuration and seed chosen on validation data (``choose``);
  `lstmx.lab.solve_curves`: steps to solve as a censored (Kaplan-Meier) curve;
  `lstmx.lab.solving`: a solved-rule sweep's records (controls, solve rates,
  stopping points, contrasts, steps to solve, paired ratios); `lstmx.lab.per_seed`:
  records of a metric measured once per seed (an estimate; two configurations paired
  by seed: difference or ratio, and the sign test);
* `lstmx.lab.trained`: what an experiment's ``analyze`` loads of its trial (the
  fresh, trained and checkpointed models);
* `lstmx.lab.report`: ``report.md``, ``report.json``, ``summary.csv`` and figures from
  a results table; `lstmx.lab.overview`: the cross-experiment page "Where LSTMs stop
  working" from several output directories;
* `lstmx.lab.info`: what ``lstmx info`` prints (devices, versions, what ``auto`` picks);
* `lstmx.lab.cli`: ``lstmx`` / ``python -m lstmx``.

An experiment file needs only ``from lstmx.lab import Preset, main``.
"""

from lstmx.lab.experiment import PRESETS, Experiment, Preset, load
from lstmx.lab.command import main
from lstmx.lab.options import SweepOptions
from lstmx.lab.runner import run

__all__ = ["Experiment", "PRESETS", "Preset", "SweepOptions", "load", "main", "run"]
