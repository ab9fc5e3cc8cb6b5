"""The experiment protocol: what ``python experiments/NAME.py`` and
``lstmx train FILE[:VARIANT]`` both accept.

An experiment file is a Python module with

* ``NAME``: a short name (output directories, results; default: the file's stem);
* ``presets() -> {"tiny" | "quick" | "full": Preset(base=Config, sweep=[overrides])}``;
* optionally ``analyze(config, workdir) -> dict``, run after each finished
  trial (its scalars join the results row);
* optionally ``figures(results, fig_dir) -> [(title, stem)]`` and
  ``findings(results) -> [Finding | sentence]``, used by the report: records
  (`lstmx.lab.findings.Finding`) are checked against ``controls(results) ->
  [Control]`` (a finding whose control failed or did not run is withheld) and
  rendered by `lstmx.lab.findings.render`;
* optionally ``LIMIT``: which limit of LSTMs the experiment probes (``"compute"``,
  ``"overfitting"``, ``"long_range"``, ``"non_sequential"``, or any other name;
  default ``NAME``), and ``headline(results) -> {"figure": stem, "finding":
  sentence | {field: value} | [{field: value}, ...], "where": {column: value}}``: what the cross-experiment
  page (``lstmx report DIR DIR ...``, `lstmx.lab.overview`) shows for it, the finding
  given as a sentence or picked among the records by its fields
  (`lstmx.lab.findings.pick`); every key is optional (default: the first figure, the
  first finding, all rows);
* optionally ``TIMED = True``: its trials measure wall time, so ``--workers auto``
  runs them one at a time on a CPU host (parallel trials would share the cores they
  time; one per GPU on a GPU host, as for any experiment);
* optionally ``VARIANTS = {name: () -> Config}``: single configs that
  ``lstmx train FILE:VARIANT`` trains (``experiments/smoke.py``).

`Experiment.from_module` reads those names once and fills the optional ones
with defaults, so the runner and the report call them without asking what a
module has:

    >>> exp = load("experiments/long_dependency.py")
    >>> exp.name, sorted(exp.presets())
    ('long_dependency', ['full', 'quick', 'tiny'])
    >>> exp.config("quick")        # the quick preset's base config
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import types
from typing import Any, Callable, Mapping

from lstmx.config import Config

PRESETS = ("tiny", "quick", "full")
DEFAULT_PRESET = "quick"


@dataclasses.dataclass(frozen=True)
class Preset:
  """One sweep: every trial is `base` with one of `sweep`'s overrides applied."""

  base: Config
  sweep: list[dict[str, Any]]
  seeds: int = 1


def _no_figures(results, fig_dir: str) -> list[tuple[str, str]]:
  del results, fig_dir
  return []


def _no_findings(results) -> list[str]:
  del results
  return []


def _no_controls(results) -> list:
  del results
  return []


def _no_headline(results) -> dict:
  del results
  return {}


HEADLINE_KEYS = ("figure", "finding", "where")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """An experiment, whatever its file defines.

  Attributes:
    name: ``NAME``.
    description: the first line of the module's docstring.
    path: the file it came from (recorded in ``experiment.json``).
    presets: ``presets() -> {name: Preset}``; none: ``{}``.
    analyze: ``analyze(config, workdir) -> dict`` or None (no per-trial analysis).
    figures: ``figures(results, fig_dir) -> [(title, stem)]``; default none.
    findings: ``findings(results) -> [Finding | sentence]``; default none.
    controls: ``controls(results) -> [Control]``; default none.
    variants: ``{name: () -> Config}``, the file's ``VARIANTS``; default ``{}``.
    limit: ``LIMIT``, the limit of LSTMs it probes; default `name`.
    headline: ``headline(results) -> {"figure"?, "finding"?, "where"?}``; default
      ``{}`` (`headline_of` fills in the first figure and finding).
    timed: ``TIMED``, whether its trials measure wall time (``auto`` workers on a
      CPU host: one); default False.
  """

  name: str
  description: str = ""
  path: str = ""
  presets: Callable[[], Mapping[str, Preset]] = dict
  analyze: Callable[[Config, str], dict] | None = None
  figures: Callable[[Any, str], list[tuple[str, str]]] = _no_figures
  findings: Callable[[Any], list] = _no_findings
  controls: Callable[[Any], list] = _no_controls
  variants: Mapping[str, Callable[[], Config]] = dataclasses.field(default_factory=dict)
  limit: str = ""
  headline: Callable[[Any], dict] = _no_headline
  timed: bool = False

  def __post_init__(self):
    if not self.limit:
      object.__setattr__(self, "limit", self.name)

  @classmethod
  def from_module(cls, module: types.ModuleType) -> Experiment:
    """Reads an experiment file's names (module attributes), defaults for the missing
    (``NAME``: the file's stem)."""
    path = getattr(module, "__file__", None) or ""
    if not hasattr(module, "presets") and not hasattr(module, "VARIANTS"):
      raise ValueError(f"{path or module.__name__}: expected an experiment file defining "
                       "presets() or VARIANTS")
    stem = os.path.splitext(os.path.basename(path))[0] or module.__name__
    doc = (module.__doc__ or "").strip().splitlines()
    return cls(name=getattr(module, "NAME", stem), description=doc[0] if doc else "",
               path=os.path.abspath(path) if path else "",
               presets=getattr(module, "presets", dict),
               analyze=getattr(module, "analyze", None),
               figures=getattr(module, "figures", _no_figures),
               findings=getattr(module, "findings", _no_findings),
               controls=getattr(module, "controls", _no_controls),
               variants=getattr(module, "VARIANTS", {}),
               limit=getattr(module, "LIMIT", ""),
               headline=getattr(module, "headline", _no_headline),
               timed=bool(getattr(module, "TIMED", False)))

  def headline_of(self, results, figures: list[tuple[str, str]],
                  findings: list[str], records: list = ()) -> dict:
    """The headline for the cross-experiment page: ``{"figure": stem | None, "title":
    its title | None, "finding": sentence | None, "where": {column: value}}``, the
    file's ``headline(results)`` with the first of `figures` (``[(title, stem)]``, as
    ``figures()`` returned them) and of `findings` (rendered sentences) where it names
    none; a finding given as ``{field: value}`` (or a list of them, in preference) is
    the first of `records` (checked `Finding` records) with those fields, a kept one
    before a withheld one.

    Raises:
      ValueError: ``headline()`` returned something else than a dict of
        `HEADLINE_KEYS`, or a figure stem that is not one of `figures`.
    """
    given = self.headline(results)
    where = f"{self.path or self.name}: headline()"
    if not isinstance(given, dict) or set(given) - set(HEADLINE_KEYS):
      raise ValueError(f"{where}: expected a dict with keys among {HEADLINE_KEYS}; got "
                       f"{given!r}")
    titles = {stem: title for title, stem in figures}
    stem = given.get("figure") or (figures[0][1] if figures else None)
    if stem is not None and stem not in titles:
      raise ValueError(f"{where}: figure: expected one of the stems figures() drew "
                       f"{sorted(titles)}; got {stem!r}")
    where_rows = given.get("where") or {}
    if not isinstance(where_rows, dict):
      raise ValueError(f"{where}: where: expected a dict {{column: value}}; got "
                       f"{where_rows!r}")
    where_rows = {k: v.item() if hasattr(v, "item") else v for k, v in where_rows.items()}
    finding = given.get("finding")
    if isinstance(finding, (dict, list)):  # fields to pick a record by, in preference
      from lstmx.lab import findings as records_
      hits = [f for fields in ([finding] if isinstance(finding, dict) else finding)
              for f in records_.pick(records, **fields)]
      hits = sorted(hits, key=lambda f: f.withheld_reason is not None)  # stable
      finding = records_.render(hits[0]) if hits else None
    return {"figure": stem, "title": titles.get(stem), "where": where_rows,
            "finding": finding or (findings[0] if findings else None)}

  def choices(self) -> tuple[str, tuple[str, ...]]:
    """What ``FILE:VARIANT`` may name: ``("variant", VARIANTS)`` if the file has
    them, else ``("preset", presets)``."""
    if self.variants:
      return "variant", tuple(self.variants)
    return "preset", tuple(self.presets())

  def default_variant(self) -> str | None:
    """``base`` among VARIANTS, else the ``quick`` preset, else the first choice."""
    what, names = self.choices()
    preferred = "base" if what == "variant" else DEFAULT_PRESET
    return preferred if preferred in names else (names[0] if names else None)

  def config(self, variant: str | None = None) -> Config:
    """The one config ``lstmx train FILE[:VARIANT]`` trains: the VARIANT of the
    file's ``VARIANTS``, else the ``base`` of the preset named VARIANT.

    Raises:
      ValueError: naming the accepted variants or presets.
    """
    what, names = self.choices()
    variant = self.default_variant() if variant is None else variant
    if variant not in names:
      raise ValueError(f"{what}: expected one of {names} for {self.path or self.name}; "
                       f"got {variant!r}")
    if what == "variant":
      return self.variants[variant]()
    return self.presets()[variant].base


def load(path: str) -> Experiment:
  """The experiment of the Python file at `path`.

  Raises:
    FileNotFoundError: `path` does not exist.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"experiment file {path!r} does not exist")
  name = "lstmx_experiment_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return Experiment.from_module(module)


def as_experiment(experiment: Experiment | types.ModuleType) -> Experiment:
  """An `Experiment` from an experiment or an experiment file's module."""
  if isinstance(experiment, Experiment):
    return experiment
  return Experiment.from_module(experiment)
