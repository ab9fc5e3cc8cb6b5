"""Trials in parallel on one machine: `LocalPool` keeps one worker process per
`Slot` (its share of the cores, or one GPU) and hands each the next trial as it
finishes the last.

Workers are started with the ``spawn`` method (JAX is not fork-safe) and are
persistent: each pays JAX's start-up once, then trains trial after trial through
`lstmx.lab.pool.execute`. A worker's cores are set before it imports anything,
by the environment and CPU affinity it inherits (see `cpu_slots`):

* it is pinned to its slot's cores (``os.sched_setaffinity``): XLA's CPU client sizes
  its thread pool, and splits its reductions, by the cores a process may use when it
  starts, so a trial's numbers are those of its core count (`lstmx.lab.options`);
* ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` = its cores;
* with one core, ``XLA_FLAGS`` gets ``--xla_cpu_multi_thread_eigen=false`` (appended
  to the user's flags).

Workers die with the runner, whenever it dies (``PR_SET_PDEATHSIG`` on Linux, and a
watchdog thread that polls the parent's pid everywhere), so a rerun never finds an
orphan of the last run still writing a trial. A worker that dies mid-trial fails that
trial only and is replaced.

Why not `concurrent.futures.ProcessPoolExecutor` (measured against its guarantees,
Python 3.11): a worker that dies marks the whole executor broken
(``BrokenProcessPool``), failing every queued trial, not one; its workers all share one
``initializer``, so giving each its own cores takes a queue of slots claimed at start
(and a replacement cannot reclaim the dead worker's); and its workers outlive a runner
killed with SIGKILL (nothing sets ``PR_SET_PDEATHSIG``). This pool keeps those three.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import importlib.util
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import wait
from typing import Iterable, Iterator

ONE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CUDA_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin")


@dataclasses.dataclass(frozen=True)
class Slot:
  """What one worker owns.

  Attributes:
    cores: the cores it is pinned to (its thread counts are their number); empty: not
      pinned (a GPU worker).
    env: environment variables set for it (on top of the runner's).
  """

  cores: tuple[int, ...] = ()
  env: dict[str, str] = dataclasses.field(default_factory=dict)


def cpu_cores() -> list[int]:
  """The cores this process may run on."""
  if hasattr(os, "sched_getaffinity"):
    return sorted(os.sched_getaffinity(0))
  return list(range(os.cpu_count() or 1))


def cpu_model() -> str:
  """The CPU's model name (``/proc/cpuinfo``), else `platform.processor()`."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def gpu_devices() -> list[str]:
  """The GPUs of this host as ``CUDA_VISIBLE_DEVICES`` ids; [] where JAX runs on the
  CPU (``JAX_PLATFORMS=cpu``, no CUDA plugin installed, no GPU found). Found without
  initializing JAX here (which would claim GPU memory in the runner)."""
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if platforms and "cuda" not in platforms and "gpu" not in platforms:
    return []
  if not any(importlib.util.find_spec(name) for name in CUDA_PLUGINS):
    return []
  visible = os.environ.get("CUDA_VISIBLE_DEVICES")
  if visible is not None:
    ids = [d.strip() for d in visible.split(",") if d.strip()]
    return [] if ids[:1] == ["-1"] else ids
  if shutil.which("nvidia-smi") is None:
    return []
  try:
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
  except (OSError, subprocess.SubprocessError):
    return []
  return [str(i) for i, line in enumerate(
      ln for ln in listing.stdout.splitlines() if ln.startswith("GPU "))]


def worker_count(workers: int | str, pending: int, cores_per_trial: int = 1,
                 cores: int | None = None, gpus: int | None = None) -> int:
  """How many workers `workers` (a positive int or ``"auto"``) means for `pending`
  trials: ``auto`` is one per GPU on a GPU host, else as many as `cores` (default: this
  process's) hold at `cores_per_trial` each; never more than `pending` (at least 1)."""
  if workers == "auto":
    gpus = len(gpu_devices()) if gpus is None else gpus
    cores = len(cpu_cores()) if cores is None else cores
    workers = gpus or max(1, cores // cores_per_trial)
  return max(1, min(int(workers), pending))


def thread_env(threads: int, xla_flags: str = "") -> dict[str, str]:
  """Environment variables that hold a process's XLA (CPU) and BLAS threads to `threads`.

  One thread: XLA's Eigen thread pool off (``--xla_cpu_multi_thread_eigen=false``).
  More: XLA keeps its pool (sized by the process's CPU affinity, no flag caps it);
  OpenMP, MKL and OpenBLAS get `threads`. Must be set before jax starts.

  Args:
    threads: >= 1.
    xla_flags: flags to keep, put before the added one (e.g. ``"${XLA_FLAGS}"``,
      which Ray expands to the node's own); ``XLA_FLAGS`` is set only where a flag
      is added.
  """
  if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
    raise ValueError(f"threads: expected an int >= 1; got {threads!r}")
  env = {name: str(threads) for name in THREAD_VARS}
  if threads == 1 and ONE_THREAD_FLAG not in xla_flags.split():
    env["XLA_FLAGS"] = f"{xla_flags} {ONE_THREAD_FLAG}".strip()
  return env


def cpu_slots(workers: int, cores_per_trial: int = 1, cores: list[int] | None = None,
              xla_flags: str | None = None, first: int = 0) -> list[Slot]:
  """`workers` slots over `cores` (default: this process's), each pinned to
  `cores_per_trial` of them (consecutive from the `first`-th, wrapping around; with more
  workers than the cores hold, slots share cores round robin: slower, the same numbers)
  with as many BLAS/OpenMP threads; `xla_flags` (default: ``$XLA_FLAGS``) gets the
  one-thread flag appended where a slot has one core.

  Raises:
    ValueError: `cores_per_trial` above the number of `cores`.
  """
  cores = cpu_cores() if cores is None else list(cores)
  if cores_per_trial > len(cores):
    raise ValueError(f"cores_per_trial: expected at most {len(cores)} (the cores this "
                     f"process may use: {cores}); got {cores_per_trial}")
  xla_flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
  slots = []
  for i in range(workers):
    start = (first + i * cores_per_trial) % len(cores)
    own = tuple((cores + cores)[start:start + cores_per_trial])
    slots.append(Slot(own, thread_env(len(own), xla_flags)))
  return slots


def gpu_slots(workers: int, devices: list[str]) -> list[Slot]:
  """`workers` slots, one GPU each (round robin; GPUs shared by several workers do not
  preallocate memory)."""
  shared = workers > len(devices)
  slots = []
  for i in range(workers):
    env = {"CUDA_VISIBLE_DEVICES": devices[i % len(devices)]}
    if shared:
      env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    slots.append(Slot((), env))
  return slots


def slots_for(workers: int, cores_per_trial: int = 1) -> list[Slot]:
  """One slot per worker: a GPU each on a GPU host, else `cores_per_trial` cores each."""
  devices = gpu_devices()
  return gpu_slots(workers, devices) if devices else cpu_slots(workers, cores_per_trial)


@contextlib.contextmanager
def _inherited(slot: Slot):
  """Sets `slot`'s environment and affinity on this thread while a child is started
  (a spawned child inherits both from the thread that starts it), then restores them."""
  saved_env = {k: os.environ.get(k) for k in slot.env}
  pin = bool(slot.cores) and hasattr(os, "sched_setaffinity")
  saved_cores = os.sched_getaffinity(0) if pin else None
  try:
    os.environ.update(slot.env)
    if pin:
      os.sched_setaffinity(0, slot.cores)
    yield
  finally:
    for k, v in saved_env.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
    if pin:
      os.sched_setaffinity(0, saved_cores)


def _watch_parent(parent: int) -> None:
  while True:
    if os.getppid() != parent:
      os._exit(1)
    time.sleep(0.5)


def die_with_parent(parent: int, pdeathsig: bool = True) -> None:
  """Makes this process exit when `parent` does: ``PR_SET_PDEATHSIG`` (Linux; it fires
  when the thread that started this process ends, so only where that was the main
  thread) and a watchdog thread polling the parent's pid."""
  if pdeathsig and sys.platform.startswith("linux"):
    try:
      ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
      pass
  if os.getppid() != parent:  # it died before the signal was armed
    os._exit(1)
  threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _serve(conn, parent: int, pdeathsig: bool) -> None:
  """A worker: trains each `TrialSpec` it receives and sends back its summary; ends on
  None or a closed pipe."""
  die_with_parent(parent, pdeathsig)
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
  from lstmx.lab.pool import execute_or_report
  while True:
    try:
      spec = conn.recv()
    except (EOFError, OSError):
      return
    if spec is None:  # every trial it ran is closed and written: skip the interpreter's
      sys.stdout.flush()  # teardown (JAX's, orbax's threads), a second at the sweep's end
      sys.stderr.flush()
      os._exit(0)
    try:
      summary = execute_or_report(spec)  # a full disk: sent back, the runner stops the sweep
    except (Exception, SystemExit) as e:  # noqa: BLE001 - e.g. the experiment file fails to load
      summary = _failed(spec, f"{type(e).__name__}: {e}", traceback.format_exc())
    conn.send(summary)


def _out_of_resource(summary: dict):
  """The `OutOfResource` a worker met (a full disk stops the sweep), or None
  (`lstmx.lab.pool.out_of_resource`, imported here only once JAX may be)."""
  from lstmx.lab.pool import out_of_resource
  return out_of_resource(summary)


def _failed(spec, error: str, trace: str | None = None) -> dict:
  from lstmx.lab.trial import record_failure
  return record_failure(spec.workdir, error, trace)


class _Worker:
  def __init__(self, slot: Slot, ctx):
    self.slot = slot
    self.used = False
    self.conn, child = ctx.Pipe()
    pdeathsig = threading.current_thread() is threading.main_thread()
    self.proc = ctx.Process(target=_serve, args=(child, os.getpid(), pdeathsig), daemon=True,
                            name="lstmx-worker")
    with _inherited(slot):
      self.proc.start()
    child.close()


class LocalPool:
  """Trials in `slots`' worker processes on this machine (`lstmx.lab.pool.Pool`).

  Needs the experiment's file (``TrialSpec.experiment``): each worker loads it. A worker
  that dies mid-trial (killed, out of memory) fails that trial, which a rerun retries,
  and is replaced.
  """

  local = True  # on this machine: the sweep's compilation cache is safe to share

  def __init__(self, slots: list[Slot]):
    if not slots:
      raise ValueError("LocalPool: expected at least one slot; got none")
    self.slots = list(slots)
    self.workers = len(self.slots)
    self.running = 0
    self._ctx = mp.get_context("spawn")
    # Started now: each imports JAX while the runner prepares the sweep.
    self._pool: list[_Worker] = [_Worker(slot, self._ctx) for slot in self.slots]
    self._busy: dict[_Worker, object] = {}

  def run(self, specs: Iterable) -> Iterator[tuple[object, dict]]:
    queue = collections.deque(specs)
    for worker in self._pool:
      self._give(worker, queue)
    fatal = None  # a full disk (`OutOfResource`) met by a worker
    while self._busy:
      ready = set(wait([w.conn for w in self._busy] + [w.proc.sentinel for w in self._busy]))
      for worker in [w for w in self._busy if w.conn in ready or w.proc.sentinel in ready]:
        spec = self._busy.pop(worker)
        try:
          if not worker.conn.poll():
            raise EOFError
          summary = worker.conn.recv()
        except (EOFError, OSError):
          summary = self._lost(worker, spec)
          worker = self._replace(worker) if queue else None
        fatal = fatal or _out_of_resource(summary)
        if fatal is not None:  # the trials running end (their rows untouched), then it is
          queue.clear()        # raised: no worker killed, every checkpoint finalized
        if worker is not None:
          self._give(worker, queue)
        self.running = len(self._busy)
        if fatal is None:
          yield spec, summary
    if fatal is not None:
      raise fatal

  def _give(self, worker: _Worker, queue: collections.deque) -> None:
    if queue:
      spec = queue.popleft()
      worker.used = True
      worker.conn.send(spec)
      self._busy[worker] = spec
    self.running = len(self._busy)

  def _lost(self, worker: _Worker, spec) -> dict:
    worker.proc.join(5)
    return _failed(spec, f"worker process {worker.proc.pid} died (exit code "
                   f"{worker.proc.exitcode}) while training this trial")

  def _replace(self, worker: _Worker) -> _Worker:
    fresh = _Worker(worker.slot, self._ctx)
    self._pool[self._pool.index(worker)] = fresh
    return fresh

  def close(self) -> None:
    """Stops the workers: idle ones finish, busy ones (an interrupted sweep) are killed
    (their trials resume from their last checkpoint on a rerun)."""
    for worker in self._pool:
      if worker in self._busy or not worker.used:  # never used: may still be importing
        worker.proc.kill()
      else:
        with contextlib.suppress(OSError, ValueError):
          worker.conn.send(None)
    deadline = time.monotonic() + 10
    for worker in self._pool:
      worker.proc.join(max(0.0, deadline - time.monotonic()))
      if worker.proc.is_alive():
        worker.proc.kill()
        worker.proc.join()
      worker.conn.close()
    self._pool, self._busy, self.running = [], {}, 0
