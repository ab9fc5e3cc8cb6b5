"""Aggregates across tasks or lengths for few-seed evaluation, as rliable computes them
(Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice";
google-research/rliable ``rliable/metrics.py``, ``rliable/library.py``):

* `iqm(scores)`: the interquartile mean of all runs of all tasks (the mean of the
  middle 50 %, ``scipy.stats.trim_mean(x, 0.25)``), with a stratified percentile
  bootstrap interval (runs resampled within each task);
* `probability_of_improvement(x, y)`: ``P(X > Y)`` averaged over tasks, each task's
  by the Mann-Whitney U statistic ``U / (n m)`` (ties count 1/2), with the same
  stratified bootstrap over both arms' runs.

Written with scipy rather than importing rliable: rliable (1.2.0) is not a
dependency and pulls arch and seaborn; these are its two statistics in a few lines
over scipy's ``trim_mean``, ``mannwhitneyu`` and ``bootstrap`` (which resamples
several samples independently, i.e. stratified). Unlike rliable's ``[runs, tasks]``
matrices, tasks may have different numbers of runs. ``tests/test_stats.py`` checks
both against rliable where it is installed.

    >>> iqm([[0.9, 1.0, 0.2], [0.5, 0.6, 0.7]])           # tasks x runs
    >>> probability_of_improvement([[1, 2]], [[0, 1]])  # Estimate(value=0.875, ...)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.stats

from lstmx.lab.stats import CONFIDENCE, Estimate, percentile_bootstrap

METHOD = "stratified percentile bootstrap"


def _tasks(scores, name: str) -> list[np.ndarray]:
  tasks = [np.asarray(s, dtype=float).ravel() for s in scores]
  if not tasks or any(len(t) == 0 or not np.isfinite(t).all() for t in tasks):
    raise ValueError(f"{name}: expected finite scores for each of one or more tasks; "
                     f"got {[t.tolist() for t in tasks]}")
  return tasks


def _iqm(*tasks, axis=-1):
  return scipy.stats.trim_mean(np.concatenate(tasks, axis=axis), 0.25, axis=axis)


def iqm(scores: Sequence, confidence: float = CONFIDENCE) -> Estimate:
  """The interquartile mean of `scores` (one sequence of per-run scores per task)
  over all runs, with its stratified bootstrap interval; none when there is one run
  or no spread in every task.

  Args:
    scores: ``[tasks][runs]`` (runs may differ per task), e.g. normalized scores.
    confidence: of the interval.
  """
  tasks = _tasks(scores, "scores")
  points = tuple(float(x) for t in tasks for x in t)
  value = float(_iqm(*tasks))
  common = dict(method=METHOD, n=len(points), confidence=confidence, points=points,
                statistic="IQM")
  if all(len(t) == 1 or (t == t[0]).all() for t in tasks):
    return Estimate(value, None, None, note="no interval: no spread within any task",
                    **common)
  low, high = percentile_bootstrap(tasks, _iqm, confidence)
  return Estimate(value, low, high, **common)


def _improvement(*samples, axis=-1):
  half = len(samples) // 2
  per_task = []
  for x, y in zip(samples[:half], samples[half:]):
    x, y = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]
    per_task.append(np.mean((x > y) + 0.5 * (x == y), axis=(-2, -1)))
  return np.mean(per_task, axis=0)


def probability_of_improvement(x: Sequence, y: Sequence,
                               confidence: float = CONFIDENCE) -> Estimate:
  """``P(X > Y)``: the probability that a run of arm x scores above a run of arm y on
  the same task, averaged over tasks, with its stratified bootstrap interval.

  Args:
    x, y: ``[tasks][runs]`` scores of the two arms, tasks in the same order.
    confidence: of the interval.
  """
  xs, ys = _tasks(x, "x"), _tasks(y, "y")
  if len(xs) != len(ys):
    raise ValueError(f"x, y: expected the same tasks; got {len(xs)} and {len(ys)} tasks")
  per_task = [scipy.stats.mannwhitneyu(a, b).statistic / (len(a) * len(b))
              for a, b in zip(xs, ys)]
  common = dict(method=METHOD, n=sum(map(len, xs)) + sum(map(len, ys)),
                confidence=confidence, lo=0.0, hi=1.0,
                statistic="probability of improvement")
  value = float(np.mean(per_task))
  if all(len(t) == 1 or (t == t[0]).all() for t in (*xs, *ys)):
    return Estimate(value, None, None, note="no interval: no spread within any task",
                    **common)
  low, high = percentile_bootstrap([*xs, *ys], _improvement, confidence)
  return Estimate(value, low, high, **common)
