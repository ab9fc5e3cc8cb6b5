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
from lstmx.lab import local_pool, lock, report, run_names
from lstmx.lab.compile_cache import sweep_cache
from lstmx.lab.options import ALL_CORES, SweepOptions
from lstmx.lab.preflight import MissingData, preflight  # noqa: F401 - MissingData re-exported
from lstmx.lab import sweep as sweeps
from lstmx.lab.experiment import Experiment, Preset, as_experiment
from lstmx.lab.pool import Pool, SerialPool, TrialSpec, group_specs, specs_of
from lstmx.lab.pool import results as item_results
from lstmx.lab.progress import SweepProgress
from lstmx.lab.usage import did_you_mean
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


def cores_for(exp: Experiment, options: SweepOptions, cores: int | None = None) -> int:
  """The cores each trial's process may use on a CPU host: ``options.cores_per_trial``
  (``"all"``: `cores`, default this process's); unset, 1, or all for a timed experiment
  (``TIMED``)."""
  cores = len(local_pool.cpu_cores()) if cores is None else cores
  per = options.cores_per_trial
  if per is None:
    per = ALL_CORES if exp.timed else 1
  return cores if per == ALL_CORES else per


def make_pool(exp: Experiment, options: SweepOptions, pending: int) -> Pool:
  """The pool that runs `pending` trials: Ray's (``options.ray``: an address, or True for
  a local instance); else worker processes on this machine (`lstmx.lab.local_pool`), one
  GPU each on a GPU host, else each pinned to `cores_for` cores, even for one worker (a
  trial's numbers are those of its core count); else this process (`SerialPool`), where
  that changes no number (one worker with every core) or the experiment has no file.
  ``auto`` workers for a timed experiment (``TIMED``) on a CPU host is one.

  Raises:
    ValueError: ``cores_per_trial`` above this process's cores, Ray missing or unreachable.
  """
  if options.ray is not None:
    kwargs = {k: v for k, v in (("cpus_per_trial", options.cpus_per_trial),
                                ("gpus_per_trial", options.gpus_per_trial)) if v is not None}
    try:
      from lstmx.lab.ray_pool import RayPool
      return RayPool(address=None if options.ray is True else options.ray, **kwargs)
    except (ImportError, ValueError) as e:
      raise ValueError(f"--ray: {e}") from None
  if local_pool.gpu_devices():
    n = local_pool.worker_count(options.workers, pending)
    return local_pool.LocalPool(local_pool.slots_for(n)) if exp.path else SerialPool(exp)
  cores = local_pool.cpu_cores()
  per = cores_for(exp, options, len(cores))
  if per > len(cores):
    raise ValueError(f"cores_per_trial: expected at most {len(cores)} (the cores this "
                     f"process may use); got {per}")  # also checked by `run` up front
  auto_cores = per if exp.timed else None  # a timed experiment: one trial at a time
  n = local_pool.worker_count(options.workers, pending, per, cores=auto_cores)
  if n == 1 and per == len(cores):
    return SerialPool(exp)  # this process has exactly the worker's cores
  if not exp.path:
    warn(f"workers={options.workers}, cores_per_trial={per}: experiment {exp.name!r} has no "
         f"file (defined in code), so its trials run one after another in this process, "
         f"on its {len(cores)} cores")
    return SerialPool(exp)
  if n * per > len(cores):
    warn(f"workers={n} x cores_per_trial={per}: more than the {len(cores)} cores; workers "
         "share cores (slower; the same numbers)")
  # Sweeps that leave cores free start at a core of their own (by pid): two sweeps side by
  # side (say a test run's) spread over the cores; which core changes no number.
  first = os.getpid() % len(cores) if n * per < len(cores) else 0
  return local_pool.LocalPool(local_pool.cpu_slots(n, per, cores, first=first))


def provenance(exp: Experiment, options: SweepOptions) -> dict:
  """What ``experiment.json`` records of how the trials ran: the options, the cores each
  trial had (None on a GPU host or with Ray), jaxlib's version and the CPU."""
  import platform

  import jaxlib
  cpu = None if options.ray is not None or local_pool.gpu_devices() else cores_for(exp, options)
  return {**options.record(), "cores_per_trial": cpu, "jaxlib": jaxlib.__version__,
          "machine": platform.machine(), "processor": local_pool.cpu_model()}


def run(experiment: Experiment | types.ModuleType, preset: str, out_dir: str,
        sets: list[str] = (), options: SweepOptions | None = None, *,
        pool: Pool | None = None, **fields) -> pd.DataFrame:
  """Runs (or resumes) every trial of `preset` in `out_dir`; returns the results table.

  The trials are the preset's sweep crossed with ``options.seeds`` seeds (default: the
  preset's ``seeds``; ``train.seed`` = the base's + 0, 1, ...). They go to `pool`, else
  to `make_pool`'s: worker processes (each pinned to ``options.cores_per_trial`` cores on
  a CPU host) or Ray; the table is rewritten as each finishes, and each failed trial's
  first error line is printed on stderr as it happens. One runner at a time holds
  `out_dir` (`lstmx.lab.lock`). Before any trial starts, the optional packages and
  fetched datasets the trials need are checked (`preflight`). Trials start seed by seed
  (every configuration's first seed, then every second seed, ...), so parallel workers
  compile different programs and later seeds load theirs from the sweep's persistent
  compilation cache (``OUT/.cache/jax``; ``options.compile_cache`` False: none; never
  with Ray: `lstmx.lab.compile_cache`). With ``options.trials_per_device`` K > 1,
  pending trials that differ only in seed, learning rate or initializer train K at a
  time as one program on one device (`lstmx.train.batched`; not for a timed experiment,
  ``TIMED``: noted on stderr).

  Args:
    experiment: the experiment (its module or `Experiment`).
    preset: one of its presets.
    out_dir: the output directory.
    sets: ``key=value`` overrides of the base config.
    options: how the sweep runs (`SweepOptions`); or its fields as keywords
      (``run(exp, "quick", out, workers=2)``).
    pool: run the trials there instead (options about pools are then unused).

  Raises:
    ValueError: a bad option (naming it); `out_dir` holds another experiment's or
      preset's trials, or is held by another runner; `out_dir` holds results of different
      settings (naming the differing keys), unless ``options.force``: then the trials that
      differ are retrained from scratch (or extended, where only ``train.steps`` grew).
    MissingData: a package or dataset the trials need is missing (naming the command
      that installs or fetches it); no trial ran.
  """
  if options is None:
    options = SweepOptions(**fields)
  elif fields:
    options = options.replace(**fields)
  exp = as_experiment(experiment)
  if pool is None and options.ray is None and not local_pool.gpu_devices():
    cores = local_pool.cpu_cores()
    if cores_for(exp, options, len(cores)) > len(cores):
      raise ValueError(f"cores_per_trial: expected at most {len(cores)} (the cores this "
                       f"process may use); got {options.cores_per_trial}")
  if options.trials_per_device > 1 and exp.timed:
    warn(f"trials_per_device={options.trials_per_device}: experiment {exp.name!r} times "
         "its trials (TIMED), so they train one at a time")
    options = options.replace(trials_per_device=1)
  presets = exp.presets()
  if preset not in presets:
    raise ValueError(f"preset: expected one of {sorted(presets)}; got {preset!r}"
                     + did_you_mean(preset, presets))
  p = presets[preset]
  seeds = options.seeds
  if seeds is None:
    seeds = _preset_seeds(exp.name, preset, p.seeds)
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
    if changed and not options.force:
      what = "; ".join(f"{k} differs at {v}" for k, v in changed.items())
      raise ValueError(f"out_dir {out_dir!r} holds results of different settings ({what}); "
                       "use another output directory, or force=True (--force) to retrain them")
    summaries = {tid: _trial_summary(tid, os.path.join(out_dir, "trials", tid))
                 for tid, _ in trials}
    local = options.ray is None and (pool is None or getattr(pool, "local", False))
    cache = sweep_cache(out_dir) if options.compile_cache and local else None
    todo = [TrialSpec.make(tid, exp, configs[tid], os.path.join(out_dir, "trials", tid),
                          force=tid in changed, compile_cache=cache)
            for tid, _ in seed_major(trials)
            if summaries[tid] is None or needs_analysis(exp, summaries[tid]) or tid in changed]
    if options.trials_per_device > 1:
      todo = group_specs(todo, options.trials_per_device)
    own = pool is None and bool(todo)
    if own:  # the workers start (and import JAX) while this process goes on
      pool = make_pool(exp, options, len(todo))
    try:
      preflight([configs[spec.trial] for item in todo for spec in specs_of(item)])
      os.makedirs(os.path.join(out_dir, "trials"), exist_ok=True)
      write_json(os.path.join(out_dir, "experiment.json"), {
          "experiment": exp.path, "name": exp.name, "preset": preset,
          "sets": list(sets), "seeds": seeds, "base": to_dict(base),
          "sweep": provenance(exp, options),
          "trials": [{"trial": t, "overrides": ov} for t, ov in trials]})
      run_names.link_tensorboard(out_dir, trials)  # readable runs while the sweep runs
      rows = {tid: (result_row(tid, ov, summaries[tid]) if summaries[tid] is not None
                    else {"trial": tid, **ov, "status": "pending"}) for tid, ov in trials}
      write_results(out_dir, list(rows.values()))
    except BaseException:
      if own:
        pool.close()
      raise
    results = _run_todo(exp, preset, out_dir, pool, todo, rows, dict(trials),
                        options.progress)
    if options.report:
      report.write(exp, out_dir, results)
  return results


def _preset_seeds(name: str, preset: str, seeds) -> int:
  try:
    return SweepOptions(seeds=seeds).seeds
  except ValueError:
    raise ValueError(f"{name}.{preset}: Preset.seeds: expected a positive integer; got "
                     f"{seeds!r}") from None


def first_line(error) -> str:
  """The first line of a failed trial's error (``?`` where it has none)."""
  return (str(error or "?").strip().splitlines() or ["?"])[0]


def _run_todo(exp: Experiment, preset: str, out_dir: str, pool: Pool | None,
              todo: list, rows: dict, overrides: dict, progress: bool) -> pd.DataFrame:
  """Runs `todo` (trials and groups of trials) on `pool`, rewriting the table (`rows`)
  and the progress as each trial finishes, and printing each failure's first line on
  stderr as it comes; returns the table."""
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
          if summary.get("status", "failed") == "failed":
            bar.write(f"{exp.name}: trial {spec.trial} failed: "
                      f"{first_line(summary.get('error'))} "
                      f"({os.path.join(spec.workdir, 'failure.json')})")
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
