"""The sweep runner: expands an experiment's preset into trials (its sweep x its
seeds), trains each through `train_and_evaluate` (one run directory each) on a
pool (`lstmx.lab.pool`: this process, `workers` local processes, or Ray), and
keeps one results table. It holds no training code. See docs/sweeps.md.

An experiment is a Python file (see ``experiments/long_dependency.py``) read
through the protocol of `lstmx.lab.experiment` (``NAME``, ``presets()`` and the
optional ``analyze``, ``figures``, ``findings``); `run` and `lstmx.lab.command.main`
take its module or its `Experiment`.

Layout of ``out_dir``: ``experiment.json`` (what was run), ``trials/<id>/``
(run directories), ``results.csv`` (one row per trial and seed), ``summary.csv``
(one row per configuration over its seeds), ``report.md``, ``figures/`` and ``.lock``
(held by the one runner working there). Rerunning skips completed trials, resumes
interrupted ones and retries failed ones; the table is rebuilt from the trials' summaries, so no
trial is lost or counted twice. It always holds a row per trial (``pending``
for one not yet run), and is rewritten atomically after each trial.

A damaged trial (an unreadable or empty ``summary.json``, a checkpoint that does
not restore) is reported on stderr with the file's path and retried: its summary
is rebuilt from its checkpoint, or it resumes from an older checkpoint, or it is
retrained from scratch; it never stops the sweep.

Provenance: before anything runs, each trial's ``config.json`` (and the base
config in ``experiment.json``) is compared with what this run would train; a
difference (say another ``--set``) is refused with the differing keys, or with
``force`` those trials are retrained (or extended, for more ``train.steps``; see
`train_and_evaluate`). ``experiment.json`` is written only after that check.
"""

from __future__ import annotations

import dataclasses
import os
import types

import pandas as pd

from lstmx.config import Config, override, to_dict
from lstmx.lab import local_pool, lock, report
from lstmx.lab.compile_cache import sweep_cache
from lstmx.lab import sweep as sweeps
from lstmx.lab.experiment import Experiment, Preset, as_experiment
from lstmx.lab.pool import Pool, SerialPool, TrialSpec, group_specs, specs_of
from lstmx.lab.pool import results as item_results
from lstmx.lab.progress import SweepProgress
from lstmx.lab.trial import needs_analysis, run_trial  # noqa: F401 - run_trial re-exported
from lstmx.train.rundir import (CorruptRecord, atomic_write, config_diff, config_dict,
                                read_config, read_json, read_summary, warn, write_json)


def _flatten(prefix: str, value, out: dict) -> None:
  """Sets ``out[prefix + dotted.key]`` for `value`'s scalars, keys sorted (as in a
  ``summary.json``), so a row's columns are in one order whether its summary came
  from disk or from a worker."""
  if isinstance(value, dict):
    for k, v in sorted(value.items()):
      _flatten(f"{prefix}{k}.", v, out)
  elif not isinstance(value, (list, tuple)):
    out[prefix.rstrip(".")] = value


def result_row(trial: str, overrides: dict, summary: dict) -> dict:
  """One results-table row: the trial's overrides, status, metrics and cost."""
  row = {"trial": trial, **overrides}
  for key in ("status", "stop_reason", "steps", "wall_time", "compile_time",
              "step_memory_bytes", "peak_rss_bytes", "param_count", "error"):
    row[key] = summary.get(key)
  _flatten("final.", summary.get("final", {}), row)
  _flatten("at_best.", summary.get("at_best") or {}, row)
  _flatten("best.", summary.get("best", {}), row)
  _flatten("task.", {k: v for k, v in summary.get("task", {}).items() if k != "solved_rule"},
           row)
  _flatten("analysis.", summary.get("analysis", {}), row)
  return row


def _trial_summary(tid: str, workdir: str) -> dict | None:
  """The trial's summary; None where it has none or it is damaged (reported)."""
  try:
    return read_summary(os.path.join(workdir, "summary.json"))
  except CorruptRecord as e:
    warn(f"trial {tid}: {e}; retrying the trial")
    return None


def _read_meta(out_dir: str) -> dict | None:
  """``out_dir/experiment.json``; None where it is missing or unreadable."""
  try:
    meta = read_json(os.path.join(out_dir, "experiment.json"))
  except (FileNotFoundError, CorruptRecord):
    return None
  return meta if isinstance(meta, dict) else None


def _changed(out_dir: str, meta: dict | None, base: Config,
             configs: dict[str, Config]) -> dict[str, list[str]]:
  """{what: differing keys} between `out_dir`'s records and this run: ``experiment.json``'s
  base config (`meta`; key ``base``) and each trial's ``config.json`` (key: the trial id).
  An unreadable ``experiment.json`` is not compared; a trial whose checkpoints or summary
  have no readable ``config.json`` has unknown settings and counts as changed (its
  results are never reused or relabelled: refused, or retrained with force)."""
  from lstmx.train.session import holds_results
  changed = {}
  if isinstance(meta, dict) and isinstance(meta.get("base"), dict):
    diff = config_diff(meta["base"], config_dict(base))
    if diff:
      changed["base"] = diff
  for tid, config in configs.items():
    workdir = os.path.join(out_dir, "trials", tid)
    old = read_config(workdir)
    if old is not None:
      diff = config_diff(old, config_dict(config))
    elif holds_results(workdir):
      diff = [f"{os.path.join(workdir, 'config.json')} (missing or unreadable: the "
              "trial's settings are unknown)"]
    else:  # nothing trained there yet
      diff = []
    if diff:
      changed[tid] = diff
  return changed


def check_workers(value, option: str = "workers") -> int | str:
  """`value` as a worker count: a positive int, or ``"auto"``.

  Raises:
    ValueError: naming `option`, what it expects and what it got.
  """
  if value == "auto":
    return "auto"
  n = _positive_int(value)
  if n is None:
    raise ValueError(f"{option}: expected a positive integer or 'auto'; got {value!r}")
  return n


def _positive_int(value) -> int | None:
  """`value` (an int, or a string of one) as an int >= 1; None where it is not one."""
  try:
    n = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
  except ValueError:
    n = None
  if n is None or n < 1 or (isinstance(value, str) and value.strip() != str(n)):
    return None
  return n


def check_trials_per_device(value, option: str = "trials_per_device") -> int:
  """`value` as a number of trials trained together per device, a positive int.

  Raises:
    ValueError: naming `option`, what it expects and what it got.
  """
  n = _positive_int(value)
  if n is None:
    raise ValueError(f"{option}: expected a positive integer (1: one trial at a time); "
                     f"got {value!r}")
  return n


def check_seeds(value, option: str = "seeds") -> int:
  """`value` as a number of seeds, a positive int.

  Raises:
    ValueError: naming `option`, what it expects and what it got.
  """
  n = _positive_int(value)
  if n is None:
    raise ValueError(f"{option}: expected a positive integer; got {value!r}")
  return n


def expand(preset: Preset, base: Config, seeds: int) -> list[tuple[str, dict]]:
  """The trials as ``(id, overrides)``: each of the preset's sweep with ``train.seed`` set
  to ``base.train.seed + i`` for i < `seeds`, the seed last (readable rows). An id hashes
  the overrides (`lstmx.lab.sweep.trial_id`), the base seed's left out: the first seed's
  trials keep the ids they had before seeds existed (old output directories resume),
  and more seeds add trials beside the ones run. A sweep that sets ``train.seed`` itself
  keeps its seeds (and ids), with `seeds` 1 only.

  Raises:
    ValueError: `seeds` > 1 with a sweep that sets ``train.seed``.
  """
  own = [ov for ov in preset.sweep if "train.seed" in ov]
  if own and seeds > 1:
    raise ValueError(f"seeds: the sweep sets train.seed itself (e.g. {own[0]}); expected "
                     f"seeds=1 for it, got {seeds}")
  out = []
  for ov in preset.sweep:
    for i in range(seeds):
      if "train.seed" in ov:  # the sweep's own seed (seeds is 1)
        out.append((sweeps.trial_id(ov), dict(ov)))
      else:
        seeded = {**ov, "train.seed": base.train.seed + i}
        out.append((sweeps.trial_id(seeded if i else ov), seeded))
  return out


def seed_major(trials: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
  """`trials` (as `expand` gives them) in the order they start: every configuration's
  first seed, then every second seed, ... (stable otherwise)."""
  return sorted(trials, key=lambda t: t[1].get("train.seed", 0))


def _check_same_experiment(out_dir: str, meta: dict | None, name: str, preset: str) -> None:
  """Refuses an `out_dir` whose ``experiment.json`` names another experiment or preset."""
  if meta is None or "name" not in meta:
    return
  if (meta.get("name"), meta.get("preset")) != (name, preset):
    raise ValueError(
        f"--out {out_dir!r} holds the trials of experiment {meta.get('name')!r} preset "
        f"{meta.get('preset')!r}; expected an output directory of {name!r} preset {preset!r} "
        "(or a new one): use another --out")


def make_pool(exp: Experiment, workers: int | str, pending: int, *,
              ray: str | bool | None = None, cpus_per_trial: float | None = None,
              gpus_per_trial: float | None = None) -> Pool:
  """The pool that runs `pending` trials: Ray's (`ray`: an address, or True for a local
  instance), else `workers` processes on this machine (`lstmx.lab.local_pool`), else,
  for one worker or an experiment without a file, this process (`SerialPool`).
  ``auto`` for a timed experiment (``TIMED``) on a CPU host is one worker."""
  if ray not in (None, False):
    kwargs = {k: v for k, v in (("cpus_per_trial", cpus_per_trial),
                                ("gpus_per_trial", gpus_per_trial)) if v is not None}
    try:
      from lstmx.lab.ray_pool import RayPool
      return RayPool(address=None if ray is True else ray, **kwargs)
    except (ImportError, ValueError) as e:
      raise ValueError(f"--ray: {e}") from None
  # A timed experiment's trials would share the cores they time: one CPU worker for auto.
  n = local_pool.worker_count(workers, pending, cores=1 if exp.timed else None)
  if n <= 1:
    return SerialPool(exp)
  if not exp.path:
    if workers != "auto":
      warn(f"workers={workers}: experiment {exp.name!r} has no file (defined in code), "
           "so its trials run one after another in this process")
    return SerialPool(exp)
  return local_pool.LocalPool(local_pool.slots_for(n))


def run(experiment: Experiment | types.ModuleType, preset: str, out_dir: str,
        sets: list[str] = (), *, progress: bool = True, make_report: bool = True,
        force: bool = False, pool: Pool | None = None, workers: int | str = 1,
        seeds: int | None = None, ray: str | bool | None = None,
        cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
        compile_cache: bool = True, trials_per_device: int = 1) -> pd.DataFrame:
  """Runs (or resumes) every trial of `preset` in `out_dir`; returns the results table.

  The trials are the preset's sweep crossed with `seeds` seeds (default: the preset's
  ``seeds``; ``train.seed`` = the base's + 0, 1, ...). They go to `pool`, else to
  `make_pool`'s: `workers` processes (a positive int or ``"auto"``; 1: this process)
  or Ray (`ray`); the table is rewritten as each finishes. One runner at a time holds
  `out_dir` (`lstmx.lab.lock`). Trials start seed by seed (every configuration's first
  seed, then every second seed, ...), so parallel workers compile different programs and
  later seeds load theirs from the sweep's persistent compilation cache
  (``OUT/.cache/jax``; `compile_cache` False: none; never with Ray:
  `lstmx.lab.compile_cache`). With `trials_per_device` K > 1, pending trials that differ
  only in seed, learning rate or initializer train K at a time as one program on one
  device (`lstmx.train.batched`; meant for a GPU or TPU, slower on a CPU); each keeps
  its run directory and its row (not for a timed experiment, ``TIMED``: noted on stderr).

  Raises:
    ValueError: a bad `workers`, `seeds` or `trials_per_device` (K > 1 with Ray);
      `out_dir` holds another experiment's or preset's trials, or is held by another
      runner; `out_dir` holds results of different settings (naming the differing
      keys), unless `force`: then the trials that differ are retrained from scratch (or
      extended, where only ``train.steps`` grew).
  """
  workers = check_workers(workers)
  trials_per_device = check_trials_per_device(trials_per_device)
  if trials_per_device > 1 and ray not in (None, False):
    raise ValueError(f"trials_per_device: expected 1 with ray (a Ray task trains one "
                     f"trial); got {trials_per_device}")
  exp = as_experiment(experiment)
  if trials_per_device > 1 and exp.timed:
    warn(f"trials_per_device={trials_per_device}: experiment {exp.name!r} times its "
         "trials (TIMED), so they train one at a time")
    trials_per_device = 1
  presets = exp.presets()
  if preset not in presets:
    raise ValueError(f"preset: expected one of {sorted(presets)}; got {preset!r}")
  p = presets[preset]
  if seeds is None:
    seeds = check_seeds(p.seeds, f"{exp.name}.{preset}: Preset.seeds")
  seeds = check_seeds(seeds)
  base = override(p.base, list(sets))
  trials = expand(p, base, seeds)
  ids = [t for t, _ in trials]
  if len(set(ids)) != len(ids):
    raise ValueError(f"{exp.name}.{preset}: the sweep repeats a trial")
  configs = {}
  for tid, ov in trials:
    config = sweeps.apply(base, ov)
    configs[tid] = dataclasses.replace(config, name=f"{exp.name}/{tid}",
                                       train=dataclasses.replace(config.train, progress=False))
  os.makedirs(out_dir, exist_ok=True)
  with lock.hold(out_dir):
    meta = _read_meta(out_dir)
    _check_same_experiment(out_dir, meta, exp.name, preset)
    changed = _changed(out_dir, meta, base, configs)
    if changed and not force:
      what = "; ".join(f"{k} differs at {v}" for k, v in changed.items())
      raise ValueError(f"out_dir {out_dir!r} holds results of different settings ({what}); "
                       "use another output directory, or force=True (--force) to retrain them")
    summaries = {tid: _trial_summary(tid, os.path.join(out_dir, "trials", tid))
                 for tid, _ in trials}
    local = ray in (None, False) and (pool is None or getattr(pool, "local", False))
    cache = sweep_cache(out_dir) if compile_cache and local else None
    todo = [TrialSpec.make(tid, exp, configs[tid], os.path.join(out_dir, "trials", tid),
                          force=tid in changed, compile_cache=cache)
            for tid, _ in seed_major(trials)
            if summaries[tid] is None or needs_analysis(exp, summaries[tid]) or tid in changed]
    if trials_per_device > 1:
      todo = group_specs(todo, trials_per_device)
    if pool is None and todo:
      pool = make_pool(exp, workers, len(todo), ray=ray, cpus_per_trial=cpus_per_trial,
                       gpus_per_trial=gpus_per_trial)
    os.makedirs(os.path.join(out_dir, "trials"), exist_ok=True)
    write_json(os.path.join(out_dir, "experiment.json"), {
        "experiment": exp.path, "name": exp.name, "preset": preset,
        "sets": list(sets), "seeds": seeds, "base": to_dict(base),
        "trials": [{"trial": t, "overrides": ov} for t, ov in trials]})
    rows = {tid: (result_row(tid, ov, summaries[tid]) if summaries[tid] is not None
                  else {"trial": tid, **ov, "status": "pending"}) for tid, ov in trials}
    write_results(out_dir, list(rows.values()))
    results = _run_todo(exp, preset, out_dir, pool, todo, rows, dict(trials), progress)
    if make_report:
      report.write(exp, out_dir, results)
  return results


def _run_todo(exp: Experiment, preset: str, out_dir: str, pool: Pool | None,
              todo: list, rows: dict, overrides: dict, progress: bool) -> pd.DataFrame:
  """Runs `todo` (trials and groups of trials) on `pool`, rewriting the table (`rows`)
  and the progress as each trial finishes; returns the table."""
  waiting = {spec.trial for item in todo for spec in specs_of(item)}
  bar = SweepProgress(total=len(rows), enabled=progress, desc=f"{exp.name}/{preset} trials",
                      finished=[r["status"] for t, r in rows.items() if t not in waiting])
  if pool is not None:
    workers = getattr(pool, "workers", 1) or 1
    try:
      bar.started(min(workers, len(todo)))
      left = 0
      for item, result in pool.run(todo):
        left += 1
        for spec, summary in item_results(item, result):
          rows[spec.trial] = result_row(spec.trial, overrides[spec.trial], summary)
          write_results(out_dir, list(rows.values()))
          running = getattr(pool, "running", None)
          bar.update(summary.get("status", "failed"),
                     min(workers, len(todo) - left) if running is None else running)
    finally:
      pool.close()
  bar.close()
  return pd.DataFrame(list(rows.values()))


def write_results(out_dir: str, rows: list[dict]) -> None:
  """Writes ``out_dir/results.csv`` atomically."""
  atomic_write(os.path.join(out_dir, "results.csv"),
               lambda f: pd.DataFrame(rows).to_csv(f, index=False))
