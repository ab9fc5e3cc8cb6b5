"""Overfitting: how LSTM language models overfit, and how strong a regularizer should be.

Language models trained with truncated BPTT and carried state (task
``stream_lm``: the hidden state of window k is the initial state of window
k + 1, reset each epoch; evaluation carries it over the whole split, exactly).
Swept: the *strength* of each regularizer (dropout on the non-recurrent
connections 0 / 0.2 / 0.4 / 0.6 as Zaremba et al. 2014; weight drop, zoneout,
AR/TAR over a few values), training-set size, and the AWD-LSTM recipe with
NT-ASGD (Merity et al. 2018). Each run is measured at its best-validation
checkpoint (``at_best``; validation selects, test only reports). The findings are
records (`findings`): regularizers against none paired by seed (sign tests), the
regularizer chosen on the best validation loss against none on test perplexity
(ratio of the means with a bootstrap interval), the unregularized loss's rise
after its best (a bootstrap interval bounded below by 0) and the seeds it holds in.

* quick (2-core CPU, ~15 min with 3 seeds and 2 workers): character-level
  Shakespeare (the ``[data]`` extra, no fetch), 20k training characters, a
  2-layer LSTM: the unregularized model's validation loss turns up while its
  training loss falls, and dropout lowers the best validation loss.
* full (a GPU): word-level Brown corpus (``python scripts/fetch_data.py
  brown``; a PTB-sized stand-in), Zaremba's medium model (2 x 650, T = 35,
  B = 20, SGD), every strength and three training-set sizes, and the AWD recipe.
* full on Penn Treebank, for users who have ``ptb.{train,valid,test}.txt``:
  ``--preset full --set task.params.dataset=ptb --set task.params.path=DIR``;
  compare with Zaremba et al.'s numbers (small, unregularized: validation 120.7
  / test 114.5; medium, dropout 0.5: 86.2 / 82.7).

    python experiments/overfitting.py --preset tiny    # CI, seconds
    python experiments/overfitting.py --preset quick   # 2-core CPU
    python experiments/overfitting.py --preset full    # a GPU, Brown fetched

docs/experiments.md has the protocol and its departures from the papers.
Needs the data extra (``pip install -e ".[data]"``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
from lstmx.lab import Preset, main

NAME = "overfitting"
LIMIT = "overfitting"
R = "model.regularization."


def regularizer(family: str, strength: float) -> dict:
  """The overrides of one regularizer at one strength (0: none)."""
  s = float(strength)
  if family == "none" or s == 0.0:
    return {}
  if family == "dropout":  # Zaremba et al.: every non-recurrent connection
    return {R + "input_dropout": s, R + "layer_dropout": s, R + "output_dropout": s}
  if family == "weight_drop":  # DropConnect on W_hh (AWD-LSTM's WeightDrop)
    return {R + "weight_drop": s}
  if family == "zoneout":  # Krueger et al.'s ratio: zoneout_c = s, zoneout_h = s / 10
    return {R + "zoneout_c": s, R + "zoneout_h": s / 10}
  if family == "ar_tar":  # AWD-LSTM's ratio: alpha = s, beta = s / 2
    return {R + "ar": s, R + "tar": s / 2}
  if family == "embedding_dropout":
    return {R + "embedding_dropout": s}
  raise ValueError(f"family: expected one of {FAMILIES}; got {family!r}")


FAMILIES = ("none", "dropout", "weight_drop", "zoneout", "ar_tar", "embedding_dropout")
# AWD-LSTM (Merity et al. 2018, PTB): weight drop 0.5, dropouti 0.4, dropouth 0.3 (their
# default; 0.25 in the PTB command), dropout 0.4, dropoute 0.1, AR 2, TAR 1, locked
# (variational) masks; NT-ASGD: SGD lr 30, clip 0.25, weight decay 1.2e-6, nonmono 5.
AWD = {R + "weight_drop": 0.5, R + "input_dropout": 0.4, R + "layer_dropout": 0.3,
       R + "output_dropout": 0.4, R + "embedding_dropout": 0.1, R + "variational": True,
       R + "ar": 2.0, R + "tar": 1.0,
       "optimizer.name": "sgd", "optimizer.lr": 30.0, "optimizer.momentum": 0.0,
       "optimizer.clip_norm": 0.25, "optimizer.weight_decay": 1.2e-6,
       "optimizer.averaging": "nt", "optimizer.nonmono": 5}


def trial(family: str, strength: float, size: int | None) -> dict:
  """One sweep point: a regularizer at a strength on `size` training tokens."""
  over = AWD if family == "awd" else regularizer(family, strength)
  return {"meta.regularizer": "none" if not over else family, "meta.strength": float(strength),
          "meta.train_size": size or 0, "task.params.train_size": size, **over}


def sweep(strengths: dict[str, list[float]], sizes: list[int | None],
          size_families: tuple[str, ...]) -> list[dict]:
  """Every family at every strength on the largest size; `size_families` (at their
  middle strength) on the other sizes too. ``none`` appears once per size."""
  out, seen = [], set()

  def add(o):
    if json.dumps(o, sort_keys=True) not in seen:
      seen.add(json.dumps(o, sort_keys=True))
      out.append(o)

  for size in sizes:
    add(trial("none", 0.0, size))
    for family, values in strengths.items():
      if size != sizes[-1] and family not in size_families:
        continue
      picks = values if size == sizes[-1] else [values[len(values) // 2]]
      for s in picks:
        add(trial(family, s, size))
  return out


def base() -> Config:
  """The quick preset's model and task: character-level Shakespeare, 2 x 128 LSTM."""
  task = {"dataset": "shakespeare", "seq_len": 64, "train_size": 20000, "eval_rows": 16,
          "eval_tokens": 20000}
  return Config(name=NAME,
                model=ModelConfig(hidden_size=128, num_layers=2, embedding_size=32),
                task=TaskConfig(name="stream_lm", params=task),
                optimizer=OptimizerConfig(name="adam", lr=3e-3, clip_norm=1.0),
                train=TrainConfig(steps=1500, batch_size=16, log_every=25, eval_every=50,
                                  eval_batches=1, checkpoint_every=1500, keep_checkpoints=1,
                                  steps_per_call=25))


def word_base(dataset: str = "brown", path: str | None = None) -> Config:
  """Zaremba et al.'s medium model (2 x 650, embedding 650, T = 35, B = 20, SGD lr 1,
  clip 5, lr / 1.2 every epoch) on a word-level corpus; ~39 epochs of Brown."""
  b = base()
  epoch = (1_097_005 // 20 - 1) // 35  # Brown's windows per epoch at B = 20, T = 35
  task = {"dataset": dataset, "seq_len": 35, "eval_rows": 1, "path": path}
  return dataclasses.replace(
      b, model=ModelConfig(hidden_size=650, num_layers=2, embedding_size=650),
      task=TaskConfig(name="stream_lm", params=task),
      optimizer=OptimizerConfig(name="sgd", lr=1.0, momentum=0.0, clip_norm=5.0,
                                schedule="step", step_every=epoch, step_factor=1 / 1.2),
      train=TrainConfig(steps=39 * epoch, batch_size=20, log_every=100, eval_every=epoch // 2,
                        eval_batches=1, checkpoint_every=epoch, keep_checkpoints=1,
                        steps_per_call=1))


FULL_STRENGTHS = {"dropout": [0.2, 0.4, 0.5, 0.6], "weight_drop": [0.2, 0.5, 0.7],
                  "zoneout": [0.1, 0.25, 0.5], "ar_tar": [1.0, 2.0, 4.0],
                  "embedding_dropout": [0.1, 0.2], "awd": [1.0]}


def presets() -> dict[str, Preset]:
  b = base()
  tiny = dataclasses.replace(
      b, model=dataclasses.replace(b.model, hidden_size=16, embedding_size=8),
      task=dataclasses.replace(b.task, params={**b.task.params, "seq_len": 16,
                                               "train_size": 2000, "eval_tokens": 1000}),
      train=dataclasses.replace(b.train, steps=8, eval_every=4, log_every=4, checkpoint_every=4,
                                batch_size=4, steps_per_call=4))
  word = word_base()
  return {
      "tiny": Preset(tiny, sweep({"dropout": [0.4]}, [2000], ()), seeds=1),
      "quick": Preset(b, sweep({"dropout": [0.2, 0.4, 0.6], "weight_drop": [0.5]}, [20000], ()),
                      seeds=3),
      "full": Preset(word, sweep(FULL_STRENGTHS, [100_000, 300_000, None],
                                 ("dropout", "awd")), seeds=3),
  }


# Reporting: each metric's centre over seeds with the interval its kind gets
# (lstmx.lab.quantities: losses and perplexities >= 0 get a bootstrap interval).

KEYS = ["meta.train_size", "meta.regularizer", "meta.strength"]
BEST_VAL, TEST_AT_BEST = "at_best.validation.loss", "at_best.test.perplexity"
RISE = "rise"  # final minus best validation loss: > 0 when validation turned up
TRAIN_DROP = "train_drop"  # train loss at the best checkpoint minus at the end


def _finished(results):
  """Finished rows, with the rise of the validation loss after its best and the fall
  of the (exact, evaluation-mode) training loss over the same steps."""
  df = results[results["status"].isin(["completed", "early_stopped"])].copy()
  need = {"final.validation.loss", BEST_VAL, "final.train.loss", "at_best.train.loss"}
  if need <= set(df):
    df[RISE] = df["final.validation.loss"] - df[BEST_VAL]
    df[TRAIN_DROP] = df["at_best.train.loss"] - df["final.train.loss"]
  return df


def _summary(df):
  from lstmx.lab import aggregate
  if not set(KEYS) <= set(df) or not len(df):
    return None
  metrics = [m for m in (BEST_VAL, TEST_AT_BEST, RISE, TRAIN_DROP, "at_best.step",
                         "at_best.validation.perplexity", "final.validation.loss",
                         "final.train.loss") if m in df]
  return aggregate.summarize(df, metrics=metrics, keys=KEYS)


def _label(row) -> str:
  reg = row["meta.regularizer"]
  return reg if reg in ("none", "awd") else f"{reg} {row['meta.strength']:g}"


def _curves(out_dir: str, trial: str):
  path = os.path.join(out_dir, "trials", trial, "metrics.jsonl")
  rows = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
  return ({s: ([r["step"] for r in rows if r["split"] == s],
               [r["loss"] for r in rows if r["split"] == s]) for s in ("train", "validation")})


def figures(results, fig_dir: str) -> list[tuple[str, str]]:
  import matplotlib.pyplot as plt
  import numpy as np
  from lstmx.lab import quantities
  from lstmx.lab.report import plot_curves, plot_mean, save_figure
  loss = quantities.kind_of("final.train.loss")  # the curves' and the summaries' kind
  out_dir = os.path.dirname(fig_dir)
  df = _finished(results)
  summary = _summary(df)
  if summary is None or not len(summary):
    return []
  out = []
  largest = df["meta.train_size"].max()
  size_text = "all" if largest == 0 else f"{largest}"
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  drop = sorted(set(df.loc[df["meta.regularizer"] == "dropout", "meta.strength"]))
  for (reg, s), color in ((("none", 0.0), "C3"), (("dropout", drop[len(drop) // 2] if drop
                                                     else None), "C0")):
    rows = df[(df["meta.train_size"] == largest) & (df["meta.regularizer"] == reg)
              & (df["meta.strength"] == s)]
    curves = [_curves(out_dir, t) for t in rows["trial"]]
    for split, ls in (("train", "--"), ("validation", "-")):
      name = reg if reg == "none" else f"{reg} {s:g}"
      plot_curves(ax, [c[split] for c in curves], kind=loss, ls=ls, color=color,
                  label=f"{name} {split} ({len(curves)} seed{'' if len(curves) == 1 else 's'})")
  ax.set(xlabel="step", ylabel="loss (nats/token)",
         title=f"train size {size_text}: training (batch) and validation loss\n{loss.note}")
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=7)
  save_figure(fig, fig_dir, "loss_curves")
  out.append(("Training and validation loss (Zaremba et al. 2014 anchor)", "loss_curves"))

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for i, (n, g) in enumerate(summary.groupby("meta.train_size")):
    g = g.sort_values(["meta.regularizer", "meta.strength"])
    labels = [_label(r) for _, r in g.iterrows()]
    x = np.arange(len(g)) + 0.2 * i
    for ax, metric in zip(axes, (BEST_VAL, TEST_AT_BEST)):
      if f"{metric}.mean" in g:
        plot_mean(ax, g, x, metric, style="bars", color=f"C{i}",
                  label=f"train size {'all' if n == 0 else n}")
        ax.set_xticks(np.arange(len(g)), labels)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
  axes[0].set(ylabel="best validation loss (nats/token)")
  axes[1].set(ylabel="test perplexity at the best-validation checkpoint")
  if axes[0].get_legend_handles_labels()[0]:
    axes[0].legend(fontsize=7)
  fig.suptitle(quantities.kind_of(BEST_VAL).note, fontsize=9)
  save_figure(fig, fig_dir, "by_strength")
  out.append(("Best validation loss and test perplexity by regularizer strength",
              "by_strength"))
  return out


TEST_Q = "test perplexity at the best-validation checkpoint"
FINAL, BEST = "the final model", "the best-validation checkpoint"  # arms within one run


def _name(reg: str, strength: float) -> str:
  return reg if reg in ("none", "awd") else f"{reg} {strength:g}"


def _size(n) -> int | str:
  """A training-set size as a subject shows it ("all" for the whole split, 0)."""
  return "all" if n == 0 else int(n)


def _subject(n, reg: str, strength: float) -> dict:
  strength = {} if reg in ("none", "awd") else {"strength": float(strength)}
  return {"train size": _size(n), "regularizer": reg, **strength}


def _overfits(df, where: dict, subject: dict) -> list:
  """The unregularized runs turning up: the validation loss's rise from its best to
  the end (>= 0 where the final evaluation is among those that chose the best: a
  bootstrap interval bounded below by 0) and the training loss's drop over the same
  steps (unbounded: Student t), each with the seeds where it is > 0 and a sign test
  of the final model against the best checkpoint; and the best checkpoint's step."""
  import math
  from lstmx.lab import per_seed, stats
  steps = df["train.steps"].max() if "train.steps" in df else math.inf

  def rise(v):  # a negative value (a final evaluation below the best) drops the bound
    return stats.bounded_interval(v, 0.0 if (v >= 0).all() else -math.inf, math.inf)

  out = []
  for kind, metric, statistic, split, quantity in (
      ("validation_rise", RISE, rise, "validation", "validation loss"),
      ("training_drop", TRAIN_DROP, stats.t_interval, "train", "training loss")):
    what = "rise" if split == "validation" else "drop"
    out += per_seed.estimate(df, where, metric, statistic, kind=kind, subject=subject,
                             quantity=f"{quantity} {what} after the best checkpoint",
                             holds=lambda v: v > 0)
    va, vb = per_seed.matched(df, where, where, f"final.{split}.loss", f"at_best.{split}.loss")
    if len(va):
      out.append(per_seed.sign_finding(va, vb, kind=kind + per_seed.SIGN_TEST,
                                       quantity=quantity, subject=subject, arms=(FINAL, BEST)))
  return out + per_seed.estimate(
      df, where, "at_best.step", lambda v: stats.bounded_interval(v, 0, steps),
      kind="best_step", quantity="step of the best-validation checkpoint", subject=subject)


def findings(results) -> list:
  """Records (`lstmx.lab.findings.Finding`) per training-set size: the unregularized
  runs turning up (`_overfits`); each configuration's best validation loss (a loss:
  Student t) and test perplexity at its best-validation checkpoint (>= 1, skewed:
  bootstrap); each regularizer against none on the best validation loss, paired by
  seed (sign test); the headline's: the regularizer with the lowest mean best
  validation loss (chosen on validation) against none on the test perplexity (ratio
  of the means, sign test); and the first two by test perplexity, unless they are
  that pair."""
  import math
  from lstmx.lab import per_seed, stats
  df = _finished(results)
  if not set(KEYS) <= set(df) or BEST_VAL not in df or not len(df):
    return []
  out = []
  for n, rows in df.groupby("meta.train_size", sort=True):
    configs = sorted({(r, float(s)) for r, s in zip(rows["meta.regularizer"],
                                                    rows["meta.strength"])},
                     key=lambda c: (c[0] != "none", c))  # none first
    where = lambda c: dict(zip(KEYS, (n, *c)))  # noqa: E731
    none = next((c for c in configs if c[0] == "none"), None)
    if none is not None and RISE in df:
      out += _overfits(df, where(none), _subject(n, *none))
    val, vs_none = {}, {}
    for c in configs:
      val[c] = per_seed.values(df, where(c), BEST_VAL).to_numpy(float)
      out += per_seed.estimate(df, where(c), BEST_VAL, stats.t_interval, subject=_subject(
          n, *c), kind="best_validation", quantity="best validation loss")
      if none is not None and c != none:
        va, vb = per_seed.matched(df, where(c), where(none), BEST_VAL)
        if len(va):
          vs_none[c] = per_seed.sign_finding(
              va, vb, kind="regularizer_vs_none", quantity="best validation loss",
              subject=_subject(n, *c), arms=(_name(*c), "none"))
          out.append(vs_none[c])
    test = {c: per_seed.values(df, where(c), TEST_AT_BEST).to_numpy(float) for c in configs}
    test = {c: v for c, v in test.items() if len(v)}
    out += [f for c in test for f in per_seed.estimate(
        df, where(c), TEST_AT_BEST, lambda v: stats.bounded_interval(v, 1, math.inf),
        kind="test_perplexity", quantity=TEST_Q, subject=_subject(n, *c))]
    ranked = sorted(test, key=lambda c: test[c].mean())
    chosen = min(vs_none, key=lambda c: val[c].mean(), default=None)
    if len(ranked) > 1 and ranked[:2] != [chosen, none]:  # else: chosen_vs_none states it
      out += per_seed.ratio(df, where(ranked[0]), where(ranked[1]), TEST_AT_BEST,
                            kind="ranking", quantity=TEST_Q,
                            arms=(_name(*ranked[0]), _name(*ranked[1])),
                            subject={"train size": _size(n), "ranking": "first vs second"})
    if chosen is not None:
      s = vs_none[chosen].statistic
      why = (f"{_name(*chosen)} (best validation loss {val[chosen].mean():.3g} vs "
             f"{val[none].mean():.3g} for none, lower in {s.k_less}/{s.n} seed"
             f"{'s' if s.n != 1 else ''})")
      out += per_seed.ratio(df, where(chosen), where(none), TEST_AT_BEST,
                            kind="chosen_vs_none", quantity=TEST_Q,
                            arms=(_name(*chosen), "none"), subject={
                                "train size": _size(n), "regularizer chosen on validation": why})
  return out


def headline(results) -> dict:
  """For ``lstmx report``'s page: best validation loss and test perplexity by
  regularizer, and on the largest training set the regularizer chosen on validation
  against none on test perplexity at the best-validation checkpoint (its validation
  loss in the subject), else the unregularized validation loss's rise."""
  df = _finished(results)
  sizes = set(df["meta.train_size"]) if "meta.train_size" in df else set()
  largest = _size(0 if 0 in sizes else max(sizes)) if sizes else None
  return {"figure": "by_strength", "finding": [
      {"kind": "chosen_vs_none", "train size": largest}, {"kind": "chosen_vs_none"},
      {"kind": "validation_rise", "train size": largest}]}


if __name__ == "__main__":
  main(sys.modules[__name__])
