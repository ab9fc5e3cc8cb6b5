"""Trials as Ray tasks: a sweep on a local Ray instance or on a cluster.

    pool = RayPool("HOST:PORT", cpus_per_trial=2)   # or None: a local instance; "auto"
    runner.run(experiment, "quick", "/shared/runs/x", pool=pool)

Each `TrialSpec` becomes one Ray task that asks for ``cpus_per_trial`` CPUs and
``gpus_per_trial`` GPUs and calls `lstmx.lab.pool.execute` on whichever node Ray
picks: the experiment is reloaded there from ``spec.experiment`` (an absolute path)
and the trial writes its own run directory, so every node needs lstmx installed,
the experiment file at the same path, and the output directory on a shared
filesystem. Results come back as tasks finish (`ray.wait`).

A task lost with its node (or its worker process) is retried by Ray up to
``max_retries`` times; the retry finds the trial's run directory and resumes it
from its latest checkpoint (`lstmx.train.train_and_evaluate`). A trial that fails
(an exception) is not retried: `execute` returns its failure as the summary. A trial
that meets a full disk (`OutOfResource`) stops the sweep, as it does on one machine:
the runner raises it and the tasks still queued or running are cancelled (they resume
from their checkpoints on a rerun).

Ray is an optional extra: ``pip install 'lstmx[ray]'``. See docs/ray.md.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any, Iterable, Iterator

from lstmx.lab.local_pool import thread_env
from lstmx.lab.pool import TrialSpec, execute_or_report, out_of_resource
from lstmx.lab.trial import record_failure

INSTALL = "pip install 'lstmx[ray]'"


class RayUnavailable(ImportError, ValueError):
  """Ray is not installed (an ImportError, and a ValueError for one-line CLI errors)."""


def _import_ray():
  try:
    import ray  # noqa: PLC0415 - optional dependency
  except ImportError as e:
    raise RayUnavailable(f"--ray needs Ray, which is not installed ({e}): {INSTALL}") from e
  return ray


def _resource(name: str, value: Any, *, minimum: float, strict: bool) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      value > minimum if strict else value >= minimum):
    rel = ">" if strict else ">="
    raise ValueError(f"{name}: expected a number {rel} {minimum}; got {value!r}")
  return value


def _resolve(ray, address: str | None, timeout: float) -> str | None:
  """The head's HOST:PORT that `address` names, None for a new local instance (address
  None and no cluster that `ray start` recorded here or RAY_ADDRESS names).

  Raises:
    ValueError: naming `address`, where no Ray cluster answers there (ray.init would
      retry an unreachable address for minutes).
  """
  try:
    resolved = ray._private.services.canonicalize_bootstrap_address(address)  # noqa: SLF001
  except ConnectionError as e:  # "auto" and nothing running
    raise ValueError(f"--ray {address}: no Ray cluster found ({e}); start one with "
                     "`ray start --head` or pass its HOST:PORT") from None
  except ValueError as e:
    raise ValueError(f"--ray {address}: expected HOST:PORT, 'auto' or nothing; got "
                     f"{address!r} ({e})") from None
  if resolved is None:
    return None
  host, _, port = resolved.rpartition(":")
  try:
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
      pass
  except (OSError, ValueError) as e:
    named = address if address is not None else f"(none: the recorded cluster {resolved})"
    raise ValueError(f"--ray {named}: cannot reach a Ray cluster at {resolved} ({e}); "
                     "is `ray start --head` running there, and the port open?") from None
  return resolved


class RayPool:
  """Runs trials as Ray tasks (the `lstmx.lab.pool.Pool` protocol).

  Args:
    address: None: a local Ray instance (or the cluster `ray start` left on this
      machine); ``"auto"``: the running cluster; ``"HOST:PORT"``: that cluster's head.
    cpus_per_trial: CPUs each trial asks for (> 0); its XLA/BLAS threads follow
      (`thread_env`, at least 1).
    gpus_per_trial: GPUs each trial asks for (>= 0); a fraction shares a GPU, JAX's
      memory on it then capped at 0.9 times that fraction.
    max_retries: how often Ray reruns a task lost with its node or worker process.
    connect_timeout: seconds to wait for the address to answer.

  Raises:
    RayUnavailable: Ray is not installed (says how to install it).
    ValueError: a bad resource count, or no Ray cluster at `address`.
  """

  def __init__(self, address: str | None = None, *, cpus_per_trial: float = 1,
               gpus_per_trial: float = 0, max_retries: int = 3,
               connect_timeout: float = 10.0):
    cpus = _resource("cpus_per_trial", cpus_per_trial, minimum=0, strict=True)
    gpus = _resource("gpus_per_trial", gpus_per_trial, minimum=0, strict=False)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
      raise ValueError(f"max_retries: expected an int >= 0; got {max_retries!r}")
    ray = _import_ray()
    self._ray = ray
    self.address = address
    self._pending = []
    self._started = not ray.is_initialized()
    if self._started:
      head = _resolve(ray, address, connect_timeout)
      if head is None:
        ray.init(include_dashboard=False)
      else:
        ray.init(address=head)
    env = thread_env(max(1, int(cpus)), "${XLA_FLAGS}")
    if 0 < gpus < 1:
      env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * gpus:.3f}"
    self._task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries,
                            retry_exceptions=False,
                            runtime_env={"env_vars": env})(execute_or_report)

  def run(self, specs: Iterable[TrialSpec]) -> Iterator[tuple[TrialSpec, dict]]:
    """Submits every spec, then yields ``(spec, summary)`` as each task finishes; a task
    Ray gave up on (retries spent) yields a failed summary. Closing the iterator early
    (or `close`) cancels the tasks still queued or running."""
    ray = self._ray
    specs_of = {}
    try:
      for spec in specs:  # absolute paths: a worker's working directory is not the driver's
        ref = self._task.remote(dataclasses.replace(spec, workdir=os.path.abspath(spec.workdir)))
        specs_of[ref] = spec
        self._pending.append(ref)
      while self._pending:
        done, self._pending = ray.wait(self._pending, num_returns=1)
        for ref in done:
          spec = specs_of.pop(ref)
          try:
            summary = ray.get(ref)
          except ray.exceptions.RayError as e:
            summary = record_failure(spec.workdir, f"{type(e).__name__}: {e}")
          fatal = out_of_resource(summary)
          if fatal is not None:  # a full disk: every trial would fail the same way; the
            raise fatal          # others are cancelled and resume from their checkpoints
          yield spec, summary
    finally:
      self._cancel()

  def _cancel(self) -> None:
    pending, self._pending = self._pending, []
    for ref in pending:
      try:
        self._ray.cancel(ref, force=True)
      except Exception:  # noqa: BLE001 - Ray already gone: nothing left to cancel
        pass

  def close(self) -> None:
    """Cancels the trials still queued or running, and disconnects from Ray if this pool
    connected (stopping the instance it started)."""
    self._cancel()
    if self._started and self._ray.is_initialized():
      self._ray.shutdown()
    self._started = False
