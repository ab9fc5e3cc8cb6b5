"""Findings as records: what an experiment found, as data, with the control it depends
on; English is rendered from a record in one place, `render`.

A `Finding` holds the subject (task, model, length, ...), the quantity and its
statistic (a record of `lstmx.lab.stats` or `lstmx.lab.across_tasks`: an interval
and its method, a test and its p-value, n), the seeds agreeing, the budget (steps,
learning rates tried) and the name of its `Control`, the setting that must succeed
for the finding to mean anything (STYLE.md 23). `withhold` replaces the findings of
a failed (or missing) control by withheld records; `pick` selects findings by their
fields, never by their text; `to_json` / `from_json` carry them in ``report.json``.

    >>> f = Finding("solved-copy-100", "solve_rate", "solved", stats.rate(3, 5),
    ...             subject={"task": "copy", "model": "lstm", "length": 100},
    ...             control="attention")
    >>> control = Control("attention", {"model": "attention"}, "Arora et al. 2023",
    ...                   seeds=5, solved=2, required=4)
    >>> [render(g) for g in withhold([f], [control])]
    ['task copy, model lstm, length 100: solved withheld: the control attention ...']
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping, Sequence

from lstmx.lab import stats

STATISTICS = {c.__name__: c for c in (stats.Estimate, stats.RateEstimate, stats.Contrast,
                                      stats.CensoredMedian, stats.SignTest, stats.Ratio)}
Statistic = (stats.Estimate | stats.RateEstimate | stats.Contrast | stats.CensoredMedian
             | stats.SignTest | stats.Ratio)
CONTROL_FAILED = "control failed"
CONTROL_MISSING = "control not run"


@dataclasses.dataclass(frozen=True)
class Control:
  """The setting that must succeed for a sweep's findings to mean anything: ``name``,
  its ``setting`` (overrides), the ``citation`` that says it should succeed, and
  its result, ``solved`` of ``seeds``; it passes when ``solved >= required``."""
  name: str
  setting: Mapping[str, Any]
  citation: str
  seeds: int
  solved: int
  required: int

  def __post_init__(self):
    if not 0 <= self.solved <= self.seeds:
      raise ValueError(f"solved: expected 0..seeds={self.seeds}; got {self.solved}")
    if not 1 <= self.required <= self.seeds:
      raise ValueError(f"required: expected 1..seeds={self.seeds}; got {self.required}")

  @property
  def passed(self) -> bool:
    return self.solved >= self.required


@dataclasses.dataclass(frozen=True)
class Finding:
  """One finding as data.

  Attributes:
    id: unique within a report.
    kind: what the experiment states (``"longest_solved"``, ``"chrono_vs_default"``).
    quantity: the measured column or name (``"solved"``, ``"wall_time"``).
    statistic: its record; None once withheld.
    subject: the configuration it is about (``{"task": "copy", "length": 100}``).
    arms: the two compared settings ``(a, b)`` of a `Contrast`, `SignTest`, `Ratio`
      or probability of improvement, in the statistic's order.
    seeds_agreeing, seeds: in how many of how many seeds the finding holds.
    budget: what was tried (``{"steps": 2000, "learning rates": [1e-3, 3e-3]}``).
    control: the name of the `Control` it depends on (None: depends on none).
    control_passed: set by `withhold` (None: not checked).
    control_record: the control itself, set by `withhold`.
    withheld_reason: `CONTROL_FAILED` or `CONTROL_MISSING` once withheld, else None.
  """
  id: str
  kind: str
  quantity: str
  statistic: Statistic | None
  subject: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  arms: tuple[str, ...] = ()
  seeds_agreeing: int | None = None
  seeds: int | None = None
  budget: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  control: str | None = None
  control_passed: bool | None = None
  control_record: Control | None = None
  withheld_reason: str | None = None

  def __post_init__(self):
    if (self.seeds_agreeing is None) != (self.seeds is None) or (
        self.seeds is not None and not 0 <= self.seeds_agreeing <= self.seeds):
      raise ValueError(f"seeds_agreeing, seeds: expected 0 <= k <= n or both None; got "
                       f"{self.seeds_agreeing}, {self.seeds}")
    if self.arms and len(self.arms) != 2:
      raise ValueError(f"arms: expected two names (a, b); got {self.arms}")


def record_id(kind: str, subject: Mapping[str, Any]) -> str:
  """A finding's id from its kind and subject: ``"stops:task.name=adding,..."``."""
  return kind + ":" + ",".join(f"{k}={v}" for k, v in subject.items())


def withhold(findings: Iterable[Finding], controls: Iterable[Control]) -> list[Finding]:
  """`findings` with their controls checked: a finding whose control failed, or was
  not run, keeps its subject but loses its statistic and seed counts, and says why
  (``withheld_reason``); the others get ``control_passed``."""
  by_name = {c.name: c for c in controls}
  out = []
  for f in findings:
    if f.control is None:
      out.append(f)
      continue
    c = by_name.get(f.control)
    if c is not None and c.passed:
      out.append(dataclasses.replace(f, control_passed=True, control_record=c))
      continue
    out.append(dataclasses.replace(
        f, statistic=None, seeds_agreeing=None, seeds=None, control_passed=False,
        control_record=c, withheld_reason=CONTROL_MISSING if c is None else CONTROL_FAILED))
  return out


def pick(findings: Iterable[Finding], **fields) -> list[Finding]:
  """The findings whose fields (or subject keys) equal `fields`, in order:
  ``pick(fs, kind="longest_solved", task="copy", withheld_reason=None)``."""
  names = {f.name for f in dataclasses.fields(Finding)}
  missing = object()

  def value(f, key):
    return getattr(f, key) if key in names else f.subject.get(key, missing)

  return [f for f in findings if all(value(f, k) == v for k, v in fields.items())]


# --- English, rendered here only ---------------------------------------------------

# How a quantity compares, for ratios and paired counts: (verb, more, less, noun), as in
# "a is 3.2x slower than b" or "a has 2x higher validation loss than b". A quantity
# not listed has ("has", "higher", "lower", the quantity).
DIRECTIONS = {q: ("is", "slower", "faster", "") for q in (
    "wall_time", "step_time", "compile_time", "time", "training time", "steps_to_solve")}
DIRECTIONS.update({q: ("uses", "more", "less", "memory") for q in (
    "step_memory_bytes", "peak_rss_bytes", "memory")})


def _num(x) -> str:
  """Three significant digits, counts (steps, caps) in full: 0.0254, 1.23, 2000."""
  if x is None:
    return "none"
  return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _count(n: int, noun: str = "seed") -> str:
  return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _of(k: int, n: int, noun: str = "seed") -> str:
  """'3/5 seeds', '1/1 seed'."""
  return f"{k}/{_count(n, noun)}"


def _interval(s) -> str:
  """' [0.2, 1] (95 % percentile bootstrap)' or ' (no interval: one value)'."""
  if s.low is None:
    return f" ({s.note})" if getattr(s, "note", None) else ""
  return f" [{_num(s.low)}, {_num(s.high)}] ({round(100 * s.confidence)} % {s.method})"


def _compare(quantity: str, more: bool) -> tuple[str, str]:
  """(verb, comparative) for `quantity`, e.g. ("is", "slower") or ("has", "lower loss")."""
  verb, up, down, noun = DIRECTIONS.get(quantity, ("has", "higher", "lower", quantity))
  return verb, (up if more else down) + (f" {noun}" if noun else "")


def _ratio(f: Finding, r: stats.Ratio) -> str:
  a, b = f.arms or ("a", "b")
  more = r.value >= 1
  factor = r.value if more else 1 / r.value
  low, high = (r.low, r.high) if more or r.low is None else (1 / r.high, 1 / r.low)
  if f"{factor:.3g}" == "1":
    return f"{a} and {b} are equal in {f.quantity} (ratio {_num(r.value)})"
  verb, word = _compare(f.quantity, more)
  shown = dataclasses.replace(r, low=low, high=high)
  return (f"{a} {verb} {_num(factor)}x {word} than {b}{_interval(shown)}, "
          f"over {r.n_a} and {_count(r.n_b, 'value')}")


def _statistic(f: Finding, s: Statistic) -> str:
  q = f.quantity
  a, b = f.arms or ("a", "b")
  if isinstance(s, stats.RateEstimate):
    return f"{q} in {_of(s.k, s.n)}, rate {_num(s.value)}{_interval(s)}"
  if isinstance(s, stats.Contrast):
    return (f"{q}: {a} in {_of(s.a.k, s.a.n)}, {b} in {_of(s.b.k, s.b.n)} "
            f"({s.test}, p = {s.p_value:.2g})")
  if isinstance(s, stats.CensoredMedian):
    if s.value is None:
      return f"{q}: no values"
    value = f">= {_num(s.cap)}" if s.censored else _num(s.value)
    return (f"median {q} {value} ({s.method}; {_of(s.n_censored, s.n, 'run')} reached "
            f"the cap of {_num(s.cap)})")
  if isinstance(s, stats.SignTest):
    if s.k_greater == s.k_less:  # no direction to state
      return (f"{a} and {b}: {q} higher in {s.k_greater}, lower in {s.k_less} of "
              f"{_count(s.n)} ({s.ties} tied; {s.test}, p = {s.p_value:.2g})")
    more = s.k_greater > s.k_less
    verb, word = _compare(q, more)
    k = s.k_greater if more else s.k_less
    return (f"{a} {verb} {word} than {b} in {_of(k, s.n)} "
            f"({s.ties} tied; {s.test}, p = {s.p_value:.2g})")
  if isinstance(s, stats.Ratio):
    return _ratio(f, s)
  if s.statistic == "probability of improvement":
    return f"P({a} > {b}) in {q} = {_num(s.value)}{_interval(s)}, over {_count(s.n, 'run')}"
  if s.value is None:
    return f"{q}: no values"
  return f"{q} {s.statistic} {_num(s.value)}{_interval(s)}, {_count(s.n, 'value')}"


def _value(v) -> str:
  return f"{v:g}" if isinstance(v, float) else str(v)


def subject_text(f: Finding) -> str:
  """The subject as rendered before the colon: "task adding, model lstm"."""
  return ", ".join(f"{k} {_value(v)}" for k, v in f.subject.items()) or f.id


def _budget(budget: Mapping[str, Any]) -> str:
  def text(v):
    return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
  return "; ".join(f"{k} {text(v)}" for k, v in budget.items())


def render(finding: Finding) -> str:
  """The finding in one English sentence: subject, statistic (a ratio in the
  direction its value says: "a is 3.2x slower than b", or "faster" below 1), seeds
  agreeing, budget and control; a withheld finding says which control failed."""
  f, c = finding, finding.control_record
  head = f"{subject_text(f)}: "
  if f.withheld_reason == CONTROL_MISSING:
    return f"{head}{f.quantity} withheld: the control {f.control} was not run."
  if f.withheld_reason is not None:
    return (f"{head}{f.quantity} withheld: the control {c.name} solved "
            f"{_of(c.solved, c.seeds)}, fewer than the {c.required} it needs "
            f"({c.citation}).")
  parts = [_statistic(f, f.statistic)]
  counted = isinstance(f.statistic, (stats.RateEstimate, stats.Contrast,
                                      stats.CensoredMedian, stats.SignTest))
  if f.seeds is not None and not counted:  # those statistics state their counts
    parts.append(f"holds in {_of(f.seeds_agreeing, f.seeds)}")
  if f.budget:
    parts.append(f"budget: {_budget(f.budget)}")
  if f.control is not None:
    parts.append(f"control {f.control} " + (f"passed ({_of(c.solved, c.seeds)})"
                                            if f.control_passed else "not checked"))
  return head + "; ".join(parts) + "."


# --- report.json ---------------------------------------------------------------------

_RECORDS = {**STATISTICS, "Control": Control, "Finding": Finding}
_NON_FINITE = ("Infinity", "-Infinity", "NaN")


def _encode(x):
  if dataclasses.is_dataclass(x):
    return {"type": type(x).__name__,
            **{f.name: _encode(getattr(x, f.name)) for f in dataclasses.fields(x)}}
  if isinstance(x, Mapping):
    return {str(k): _encode(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_encode(v) for v in x]
  if isinstance(x, float) and not math.isfinite(x):
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
  if hasattr(x, "item"):  # numpy scalars
    return _encode(x.item())
  return x


def _decode(x, field=False):
  if isinstance(x, Mapping) and x.get("type") in _RECORDS:
    cls = _RECORDS[x["type"]]
    return cls(**{k: _decode(v, field=True) for k, v in x.items() if k != "type"})
  if isinstance(x, Mapping):
    return {k: _decode(v) for k, v in x.items()}
  if isinstance(x, list):
    items = [_decode(v) for v in x]
    return tuple(items) if field else items  # a record's sequences are tuples
  if field and x in _NON_FINITE:
    return float(x)
  return x


def to_json(findings: Sequence[Finding], controls: Sequence[Control] = ()) -> dict:
  """``{"controls": [...], "findings": [...]}``, JSON-ready (records tagged by their
  ``type``; infinite or NaN numbers as ``"Infinity"``, ``"NaN"``)."""
  return {"controls": [_encode(c) for c in controls],
          "findings": [_encode(f) for f in findings]}


def from_json(data: Mapping) -> tuple[list[Finding], list[Control]]:
  """(findings, controls) from `to_json`'s dictionary."""
  return ([_decode(f) for f in data.get("findings", [])],
          [_decode(c) for c in data.get("controls", [])])


def checked(given, controls) -> tuple[list[str], list]:
  """(sentences, records) of an experiment's `given` findings: each `Finding`
  record checked against `controls` (`findings.withhold`) and rendered in place;
  sentences pass through."""
  given = list(given)
  records = withhold([f for f in given if isinstance(f, Finding)], controls)
  checked = iter(records)
  return [render(next(checked)) if isinstance(f, Finding) else str(f)
          for f in given], records


def report_json(records, controls) -> dict:
  """``report.json``'s ``controls`` (each with ``passed``) and ``records``."""
  data = to_json(records, controls)
  for c, rec in zip(controls, data["controls"]):
    rec["passed"] = c.passed
  return {"controls": data["controls"], "records": data["findings"]}
