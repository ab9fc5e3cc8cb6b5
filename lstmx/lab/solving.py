"""Evidence from sweeps whose trials have a solved rule, as `findings` records:
controls, solve rates, stopping points, contrasts between arms and steps to solve.

Every function takes `chosen`: the rows `lstmx.lab.selection.choose` kept, one per
configuration and seed, its learning rate chosen on validation data. A seed counts
as solved where the task's rule holds on the held-out test metrics at the end of
its run (``task.solved_test``; tables without it fall back to the validation rule
``task.solved``): the selection looked at validation only, so the rate reported is
not the maximum of the grid's validation outcomes.

* `controls(chosen, specs)`: each `ControlSpec` (a setting the cited paper solves)
  as a `findings.Control` with its seeds solved; a control passes when at least
  ``ceil(required * seeds)`` seeds solved (4 of 5 by default);
* `solve_rates`: per configuration, k of n seeds solved with the exact interval;
* `stopping_points`: per arm, along an axis (the length, the number of pairs): the
  first value from which no longer value is solved in most seeds, contrasted with
  the longest value solved below it (Fisher's exact test), or that there is none
  within the budget;
* `contrasts`: two arms at each shared value, Fisher's exact test;
* `steps_to_solve`: per configuration, the Kaplan-Meier median of the first solving
  evaluation, censored at the budget.

Budgets go into every record (``{"steps": B, "learning rates": [...]}``), so a
finding reads "not solved within B steps at the best of k learning rates".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from lstmx.lab import aggregate, solve_curves, stats
from lstmx.lab.findings import Control, Finding
from lstmx.lab.findings import record_id as _id

SOLVED = "task.solved_test"
SOLVED_VALIDATION = "task.solved"
REQUIRED = 0.8  # a control passes when at least this fraction of its seeds solved


@dataclasses.dataclass(frozen=True)
class ControlSpec:
  """A positive control: the rows ``where`` (``{column: value}``) select the setting
  that ``citation`` says is solved; it passes when ``ceil(required * seeds)`` seeds
  solve."""
  name: str
  where: Mapping[str, Any]
  citation: str
  required: float = REQUIRED

  def __post_init__(self):
    if not 0 < self.required <= 1:
      raise ValueError(f"required: expected a fraction in (0, 1]; got {self.required!r}")


def solved_column(rows: pd.DataFrame) -> str:
  """``task.solved_test`` where the table has it, else ``task.solved``."""
  if SOLVED in rows and rows[SOLVED].notna().any():
    return SOLVED
  if SOLVED_VALIDATION in rows:
    return SOLVED_VALIDATION
  raise ValueError(f"rows: expected a {SOLVED!r} or {SOLVED_VALIDATION!r} column; got "
                   f"{list(rows.columns)}")


def count_solved(rows: pd.DataFrame) -> tuple[int, int]:
  """(k, n): of the `n` rows, `k` solved (a missing value is not solved)."""
  return aggregate.agree(rows, {}, solved_column(rows)) if len(rows) else (0, 0)


def controls(chosen: pd.DataFrame, specs: Sequence[ControlSpec]) -> list[Control]:
  """The specs that have rows in `chosen` as `Control` records (a spec without rows
  is left out: findings that depend on it are withheld as not run)."""
  out = []
  for spec in specs:
    if any(k not in chosen for k in spec.where):
      continue
    k, n = count_solved(aggregate.select(chosen, spec.where))
    if n:
      out.append(Control(spec.name, dict(spec.where), spec.citation, seeds=n, solved=k,
                         required=max(1, math.ceil(spec.required * n - 1e-9))))
  return out


Named = Callable[[Mapping[str, Any]], Any]


def family_controls(chosen: pd.DataFrame, table: Mapping[str, tuple[str, str]],
                    axis: Callable[[str], tuple[str, str]], *, family: str = "task.name",
                    arm: str = "meta.model", names: Mapping[str, str] = {}
                    ) -> list[ControlSpec]:
  """One `ControlSpec` per family in `chosen` (``table``: family -> (arm, citation)):
  the arm at the family's smallest value of its axis (``axis(family)`` -> (sweep,
  column); rows of other sweeps, ``meta.sweep``, are not looked at)."""
  specs = []
  for fam, (model, citation) in table.items():
    sweep, col = axis(fam)
    if not {family, col, "meta.sweep"} <= set(chosen):
      continue
    rows = chosen[(chosen["meta.sweep"] == sweep) & (chosen[family] == fam)]
    if not len(rows):
      continue
    x = _plain(rows[col].min())
    x = int(x) if float(x).is_integer() else x
    specs.append(ControlSpec(f"{fam}: {model} at {names.get(col, col)}={x}",
                             {"meta.sweep": sweep, family: fam, arm: model, col: x}, citation))
  return specs


def control_by(specs: Sequence[ControlSpec], family: str = "task.name") -> Named:
  """subject -> the name of its family's control (None: the family has none)."""
  names = {spec.where[family]: spec.name for spec in specs}
  return lambda subject: names.get(subject.get(family), NO_CONTROL)


NO_CONTROL = "none in this sweep"


def budget_of(results: pd.DataFrame, key: str = "optimizer.lr") -> Named:
  """subject -> the budget its trials had, from the whole results table (not only the
  chosen rows): ``{"steps": B, "learning rates": [...]}``, B the ``train.steps`` the
  sweep set (else the most steps a run trained), the rates where it tried several."""
  results = aggregate.counted(results)

  def budget(subject):
    rows = aggregate.select(results, {k: v for k, v in subject.items() if k in results})
    steps = pd.to_numeric(rows["train.steps"], errors="coerce").max() if (
        "train.steps" in rows) else math.nan
    if not np.isfinite(steps) and "steps" in rows:
      steps = pd.to_numeric(rows["steps"], errors="coerce").max()
    out = {"steps": int(steps)} if np.isfinite(steps) else {}
    rates = sorted(_plain(v) for v in set(rows[key])) if key in rows else []
    if len(rates) > 1:
      out["learning rates"] = rates
    return out
  return budget


def _groups(chosen: pd.DataFrame, keys: Sequence[str]):
  """(subject {key: value}, rows) per distinct value of `keys`, in table order."""
  keys = [k for k in keys if k in chosen]
  if not keys:
    yield {}, chosen
    return
  for values, rows in chosen.groupby(keys, sort=False, dropna=False):
    values = values if isinstance(values, tuple) else (values,)
    yield {k: _plain(v) for k, v in zip(keys, values)}, rows


def _plain(v):
  return v.item() if hasattr(v, "item") else v


def _names(subject: Mapping[str, Any], names: Mapping[str, str]) -> dict:
  """`subject` with its column keys shown by `names` (``{"meta.length": "T"}``)."""
  return {names.get(k, k.rsplit(".", 1)[-1]): v for k, v in subject.items()}


def solve_rates(chosen: pd.DataFrame, keys: Sequence[str], *, control: Named,
                budget: Named, names: Mapping[str, str] = {}) -> list[Finding]:
  """Per configuration (`keys`), ``solved`` in k of n seeds with the Clopper-Pearson
  interval; `control(subject)` names its control, `budget(subject)` its budget."""
  out = []
  for subject, rows in _groups(chosen, keys):
    k, n = count_solved(rows)
    out.append(Finding(_id("solve_rate", subject), "solve_rate", "solved", stats.rate(k, n),
                       subject=_names(subject, names), seeds_agreeing=k, seeds=n,
                       budget=budget(subject), control=control(subject)))
  return out


def _most(k: int, n: int) -> bool:
  return n > 0 and 2 * k > n


def stopping_points(chosen: pd.DataFrame, keys: Sequence[str], along: str, *,
                    control: Named, budget: Named,
                    names: Mapping[str, str] = {}) -> list[Finding]:
  """Per arm (`keys`), along `along` (sorted ascending): kind ``stops`` where a value
  is solved in most seeds and, from some longer value on, none is (the statistic:
  Fisher's test of the longest solved value against the first unsolved one after
  it); kind ``solved_throughout`` (the rate at the longest value) where the longest
  value tried is solved in most seeds; kind ``never_solved`` (the rate at the
  shortest) where no value is."""
  out = []
  label = names.get(along, along.rsplit(".", 1)[-1])
  for subject, rows in _groups(chosen, keys):
    per = sorted((float(x), count_solved(r)) for x, r in rows.groupby(along))
    if not per:
      continue
    per = [(int(x) if x.is_integer() else x, kn) for x, kn in per]
    solved = [i for i, (_, kn) in enumerate(per) if _most(*kn)]
    shown = _names(subject, names)
    where = {**subject}
    if not solved:
      x, (k, n) = per[0]
      kind, stat, subj = "never_solved", stats.rate(k, n), {**shown, f"shortest {label}": x}
      where[along] = x
    elif solved[-1] == len(per) - 1:
      x, (k, n) = per[-1]
      kind, stat, subj = ("solved_throughout", stats.rate(k, n),
                          {**shown, f"longest {label}": x})
      where[along] = x
    else:
      last = solved[-1]
      (xa, (ka, na)), (xb, (kb, nb)) = per[last], per[last + 1]
      kind = "stops"
      stat = stats.contrast(ka, na, kb, nb)
      subj = {**shown, f"solved at {label}": xa, f"not from {label}": xb}
      where[along] = xb
    arms = (f"{label}={per[solved[-1]][0]}", f"{label}={where[along]}") if kind == "stops" else ()
    seeds = (nb - kb, nb) if kind == "stops" else ((k, n) if kind == "solved_throughout"
                                                   else (n - k, n))
    out.append(Finding(_id(kind, {**subject, along: where[along]}), kind, "solved", stat,
                       subject=subj, arms=arms, seeds_agreeing=seeds[0], seeds=seeds[1],
                       budget=budget(where), control=control(where)))
  return out


def contrasts(chosen: pd.DataFrame, keys: Sequence[str], arm: str, a: Any, b: Any, *,
              control: Named, budget: Named, names: Mapping[str, str] = {}) -> list[Finding]:
  """Arm `a` against arm `b` (values of the column `arm`) at each configuration of
  `keys` where both ran: their solve rates and Fisher's exact test (each arm's budget
  where they differ)."""
  out = []
  for subject, rows in _groups(chosen, keys):
    ra, rb = rows[rows[arm] == a], rows[rows[arm] == b]
    if not len(ra) or not len(rb):
      continue
    (ka, na), (kb, nb) = count_solved(ra), count_solved(rb)
    agreeing = ka if ka >= kb else kb
    out.append(Finding(_id(f"contrast_{a}_{b}", subject), "contrast", "solved",
                       stats.contrast(ka, na, kb, nb), subject=_names(subject, names),
                       arms=(str(a), str(b)), budget=_both(budget, subject, arm, a, b),
                       control=control(subject), seeds_agreeing=agreeing,
                       seeds=na if ka >= kb else nb))
  return out


def _both(budget: Named, subject, arm: str, a, b) -> dict:
  """The budget of arms `a` and `b`: one where they agree, else each key per arm."""
  ba, bb = budget({**subject, arm: a}), budget({**subject, arm: b})
  if ba == bb:
    return ba
  return {**{k: v for k, v in ba.items() if bb.get(k) == v},
          **{f"{k} ({x})": v for x, bx in ((a, ba), (b, bb)) for k, v in bx.items()
             if ba.get(k) != bb.get(k)}}


def steps_to_solve(chosen: pd.DataFrame, keys: Sequence[str], *, cap: Named,
                   control: Named, budget: Named,
                   names: Mapping[str, str] = {}) -> list[Finding]:
  """Per configuration, the Kaplan-Meier median of the steps to solve, censored at
  `cap(subject)` (its training budget): reported as ">= cap" when more than half the
  seeds never solved."""
  out = []
  for subject, rows in _groups(chosen, keys):
    steps, solved = solve_curves.steps_to_solve(rows)
    ok = np.isfinite(steps)
    censored = ~solved
    stat = stats.censored_median(steps[ok], float(cap(subject)), censored[ok])
    out.append(Finding(_id("steps_to_solve", subject), "steps_to_solve", "steps to solve",
                       stat, subject=_names(subject, names),
                       seeds_agreeing=int((~censored[ok]).sum()), seeds=int(ok.sum()),
                       budget=budget(subject), control=control(subject)))
  return out
