"""``summary.json``: what a finished run reports (status, metrics, costs, environment)."""

from __future__ import annotations

import platform
import resource
import sys

import jax

from lstmx._version import __version__
from lstmx.config import Config
from lstmx.train.hooks import divergence_rule
from lstmx.train.record import RunRecord


def _versions() -> dict:
  import flax
  import optax
  import orbax.checkpoint
  return {"lstmx": __version__, "jax": jax.__version__, "flax": flax.__version__,
          "optax": optax.__version__, "orbax": orbax.checkpoint.__version__,
          "python": platform.python_version()}


def run_summary(config: Config, task, record: RunRecord, *, steps: int, final: dict,
                at_best: dict | None, final_eval_time: float, compile_time: float,
                eval_compile_time: float = 0.0, step_memory_bytes: int | None,
                param_count: int, backend: str | None) -> dict:
  """The summary of a run that ended with `record` after `steps` steps.

  Args:
    config: the run's config.
    task: the run's task (name, baselines, solved rule).
    record: the run's final record.
    steps: steps trained.
    final: ``{split: metrics}`` of the final evaluation (empty for a diverged run).
    at_best: ``{"step", "train", "validation", "test"}``: metrics of the best-validation
      checkpoint (test metrics reported, never used to select), or None without one.
    final_eval_time: seconds of the final and at-best evaluations (after training;
      ``wall_time`` is the training's: steps, periodic evaluations and checkpoints).
    compile_time: seconds to compile the train step.
    eval_compile_time: seconds to draw the validation set and compile the evaluation
      step, before training (neither counts in ``wall_time``).
    step_memory_bytes: the compiled train step's peak memory (`compile_stats`), or None.
    param_count: number of trained parameters.
    backend: the LSTM backend the model's training step resolved to
      (`SequenceModel.resolved_backend`); None for a model without an LSTM.
  """
  tc, averaging = config.train, config.optimizer.averaging
  return {
      "name": config.name, "status": record.status, "stop_reason": record.stop_reason,
      "steps": steps, "final": final, "at_best": at_best,
      "best": {"metric": tc.monitor, "value": record.best_value, "step": record.best_step},
      "task": {"name": task.name, "baseline_loss": task.baseline_loss,
               "order_free_accuracy": task.order_free_accuracy,
               "order_free_loss": task.order_free_loss,
               "chance_accuracy": task.chance_accuracy, "solved_rule": task.solved_rule,
               "solved": bool(final and task.solved(final["validation"])),
               "solved_test": bool(final and "test" in final and task.solved(final["test"])),
               "solved_step": record.solved_step},
      "wall_time": record.wall_time, "final_eval_time": final_eval_time,
      "compile_time": compile_time, "eval_compile_time": eval_compile_time,
      "step_memory_bytes": step_memory_bytes,
      "averaging": {"mode": averaging,
                    "start_step": 0 if averaging == "always" else record.averaging_step},
      "divergence": divergence_rule(tc.diverge_factor, tc.diverge_patience, tc.log_every,
                                    record.initial_loss),
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      "param_count": param_count, "backend": backend,
      "devices": [str(d) for d in jax.devices()], "versions": _versions(),
      "argv": sys.argv,
  }
