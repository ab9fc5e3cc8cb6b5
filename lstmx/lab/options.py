"""A sweep's settings, built and checked once: `SweepOptions`.

`lstmx.lab.runner.run` takes one `SweepOptions` and passes it down whole (to the pool
that runs the trials and into ``experiment.json``); the command line builds it from its
options (`SweepOptions.from_args`), Python code directly or through `run`'s keywords::

    opts = SweepOptions(workers=2, seeds=5)          # two trials at a time, one core each
    runner.run(experiment, "quick", "runs/x", options=opts)

**Cores per trial.** On a CPU host every trial of a sweep runs in a worker process pinned
to `cores_per_trial` cores (default 1), whatever `workers` is, a one-worker sweep
included: XLA:CPU sums reductions in an order set by the cores a process may use when
XLA starts (docs/sweeps.md), so a trial's numbers are those of its core count, and the
same for any ``workers`` on any machine with the same jaxlib and instruction set.
``"all"`` gives each trial every core this process may use (then the numbers follow the
machine's core count). Timed experiments (``TIMED``) default to ``"all"``: they time a
step on the whole machine, one trial at a time. On a GPU host a worker owns one GPU
instead. A single run (``lstmx train FILE --workdir W``) keeps every core.
"""

from __future__ import annotations

import argparse
import dataclasses

ALL_CORES = "all"
AUTO = "auto"


def positive_int(value) -> int | None:
  """`value` (an int, or a string of one) as an int >= 1; None where it is not one."""
  try:
    n = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
  except ValueError:
    n = None
  if n is None or n < 1 or (isinstance(value, str) and value.strip() != str(n)):
    return None
  return n


def _count(name: str, value, *, word: str | None = None, expected: str = "a positive integer"):
  """`value` as a positive int, or `word` itself where it is that word."""
  if word is not None and value == word:
    return word
  n = positive_int(value)
  if n is None:
    alt = f" or {word!r}" if word else ""
    raise ValueError(f"{name}: expected {expected}{alt}; got {value!r}")
  return n


def _number(name: str, value, *, strict: bool):
  if value is None:
    return None
  ok = (not isinstance(value, bool) and isinstance(value, (int, float))
        and (value > 0 if strict else value >= 0))
  if not ok:
    raise ValueError(f"{name}: expected a number {'>' if strict else '>='} 0; got {value!r}")
  return value


@dataclasses.dataclass(frozen=True)
class SweepOptions:
  """How a sweep runs (not what it trains: that is the experiment's preset).

  Attributes:
    workers: trials run at once (a positive int, or ``"auto"``: one per GPU on a GPU
      host, else as many as the cores allow at `cores_per_trial` each; one for a timed
      experiment on a CPU host).
    seeds: seeds per configuration (None: the preset's).
    cores_per_trial: the cores each trial's process may use on a CPU host (a positive
      int, ``"all"``, or None: 1, or ``"all"`` for a timed experiment).
    trials_per_device: K > 1 trains up to K trials that differ only in seed, learning
      rate or initializer as one program (`lstmx.train.batched`).
    ray: run the trials as Ray tasks: an address, or True for a local instance.
    cpus_per_trial: with `ray`, the CPUs a trial asks for.
    gpus_per_trial: with `ray`, the GPUs a trial asks for.
    compile_cache: the seeds of a configuration share compiled programs
      (``OUT/.cache/jax``; never with Ray).
    force: retrain trials whose results came from other settings.
    allow_failures: a sweep with failed trials still counts as a success (exit 0).
    progress: show the sweep's progress line.
    report: write ``report.md`` and the figures at the end.

  Raises:
    ValueError: on construction, a bad value or combination, naming the field.
  """

  workers: int | str = 1
  seeds: int | None = None
  cores_per_trial: int | str | None = None
  trials_per_device: int = 1
  ray: str | bool | None = None
  cpus_per_trial: float | None = None
  gpus_per_trial: float | None = None
  compile_cache: bool = True
  force: bool = False
  allow_failures: bool = False
  progress: bool = True
  report: bool = True

  def __post_init__(self):
    fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
    fix("workers", _count("workers", self.workers, word=AUTO))
    if self.seeds is not None:
      fix("seeds", _count("seeds", self.seeds))
    if self.cores_per_trial is not None:
      fix("cores_per_trial", _count("cores_per_trial", self.cores_per_trial, word=ALL_CORES))
    fix("trials_per_device", _count("trials_per_device", self.trials_per_device,
                                    expected="a positive integer (1: one trial at a time)"))
    fix("cpus_per_trial", _number("cpus_per_trial", self.cpus_per_trial, strict=True))
    fix("gpus_per_trial", _number("gpus_per_trial", self.gpus_per_trial, strict=False))
    ray = self.ray not in (None, False)
    if not ray:
      fix("ray", None)
      for name in ("cpus_per_trial", "gpus_per_trial"):
        if getattr(self, name) is not None:
          raise ValueError(f"{name}: expected only with ray; got {getattr(self, name)!r} "
                           "without it")
    elif self.workers not in (1, AUTO):
      raise ValueError(f"workers: expected workers or ray, not both; got workers="
                       f"{self.workers!r} and ray={self.ray!r}")
    elif self.trials_per_device > 1:
      raise ValueError(f"trials_per_device: expected 1 with ray (a Ray task trains one "
                       f"trial); got {self.trials_per_device}")
    elif self.cores_per_trial not in (None, ALL_CORES) and self.cpus_per_trial is None:
      fix("cpus_per_trial", self.cores_per_trial)  # a Ray task asks for its cores
    for name in ("compile_cache", "force", "allow_failures", "progress", "report"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"{name}: expected True or False; got {getattr(self, name)!r}")

  def replace(self, **changes) -> SweepOptions:
    return dataclasses.replace(self, **changes)

  def record(self) -> dict:
    """What ``experiment.json`` keeps of these options (what can change the numbers and
    how the trials ran)."""
    return {"cores_per_trial": self.cores_per_trial, "workers": self.workers,
            "trials_per_device": self.trials_per_device, "ray": self.ray,
            "compile_cache": self.compile_cache}

  @classmethod
  def from_args(cls, args: argparse.Namespace) -> SweepOptions:
    """The options of `add_arguments`' command line (``--workers`` default ``auto``).

    Raises:
      ValueError: naming the option (``--workers``), as on construction.
    """
    fields = {"workers": AUTO if args.workers is None else args.workers,
              "seeds": args.seeds, "cores_per_trial": args.cores_per_trial,
              "trials_per_device": 1 if args.trials_per_device is None
              else args.trials_per_device,
              "ray": args.ray, "cpus_per_trial": args.cpus_per_trial,
              "gpus_per_trial": args.gpus_per_trial, "compile_cache": args.compile_cache,
              "force": args.force, "allow_failures": args.allow_failures}
    if args.ray is not None and args.workers is not None:
      raise ValueError(f"--workers and --ray: expected one of them; got --workers "
                       f"{args.workers} and --ray")
    try:
      return cls(**fields)
    except ValueError as e:
      raise ValueError(as_flags(str(e))) from None


def as_flags(message: str) -> str:
  """`message` about a `SweepOptions` field (``cores_per_trial: ...``) as the command
  line says it (``--cores-per-trial: ...``); other messages unchanged."""
  name, sep, rest = message.partition(":")
  if not sep or name not in {f.name for f in dataclasses.fields(SweepOptions)}:
    return message
  return f"--{name.replace('_', '-')}:{rest}".replace(" with ray", " with --ray")


def add_arguments(ap: argparse.ArgumentParser) -> None:
  """The sweep options of a command line (an experiment file's and ``lstmx train FILE
  --preset``), each with its help and an example; read back by `SweepOptions.from_args`."""
  ap.add_argument("--workers", metavar="N|auto",
                  help="trials run at once, each in its own worker process (CPU: pinned to "
                  "its --cores-per-trial cores; GPU: one GPU each); default auto: as many "
                  "as the cores (GPUs) allow, one for a timed experiment. "
                  "Example: --workers 2")
  ap.add_argument("--cores-per-trial", metavar="N|all",
                  help="cores each trial's process may use on a CPU host; a trial's numbers "
                  "are those of its core count, the same whatever --workers. Default 1 "
                  "('all' for a timed experiment). Example: --cores-per-trial 2")
  ap.add_argument("--seeds", metavar="N",
                  help="seeds per configuration (train.seed = base + 0..N-1); default: the "
                  "preset's. Example: --seeds 5")
  ap.add_argument("--trials-per-device", metavar="K",
                  help="train up to K trials that differ only in seed, learning rate or "
                  "initializer together, as one program vmapped over the trials (for a GPU "
                  "or TPU that one small trial leaves idle; on a CPU it is slower); each "
                  "keeps its own run directory; default 1. Example: --trials-per-device 8")
  ap.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                  help="run the trials as Ray tasks: on the cluster at ADDRESS, or without "
                  "one on a local Ray instance (needs the [ray] extra). "
                  "Example: --ray head-node:6379")
  ap.add_argument("--cpus-per-trial", type=float, metavar="N",
                  help="with --ray: CPUs per trial (default: --cores-per-trial, else 1). "
                  "Example: --cpus-per-trial 4")
  ap.add_argument("--gpus-per-trial", type=float, metavar="N",
                  help="with --ray: GPUs per trial (a fraction shares one). "
                  "Example: --gpus-per-trial 0.5")
  ap.add_argument("--no-compile-cache", dest="compile_cache", action="store_false",
                  help="compile every trial's programs afresh (default: the seeds of a "
                  "configuration share them through OUT/.cache/jax; never with --ray)")
  ap.add_argument("--allow-failures", action="store_true",
                  help="exit 0 even if some trials failed (default: a sweep with a failed "
                  "trial exits 1; each failure's first line is printed as it happens)")
