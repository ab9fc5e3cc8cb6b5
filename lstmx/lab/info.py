"""``lstmx info``: what this installation runs on, for bug reports and for checking
that an accelerator install (``pip install -e ".[cuda12]"``, docs/gpu.md) took.

`environment` gathers the devices JAX sees, the versions of the packages lstmx
uses and the backend that ``backend="auto"`` resolves to for typical calls, asked
of the dispatcher itself (`lstmx.backends.resolve`); `format_text` prints it.

    >>> env = environment()
    >>> env["auto_backend"]["float32"]        # 'scan' on a CPU, 'cudnn' on an NVIDIA GPU
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys

# Distribution names; orbax as its checkpoint package is published. The CUDA and TPU
# plugins appear only where installed.
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "torch",
            "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin", "jax-cuda13-pjrt",
            "libtpu", "ray")
OPTIONAL = ("torch", "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin",
            "jax-cuda13-pjrt", "libtpu", "ray")


def versions() -> dict[str, str | None]:
  """Installed versions: lstmx, python, and each of `PACKAGES` (None where an
  essential one is missing; optional ones are left out where missing). Read from
  the package metadata, so torch and the plugins are not imported."""
  from lstmx._version import __version__
  out: dict[str, str | None] = {"lstmx": __version__, "python": platform.python_version()}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      if name not in OPTIONAL:
        out[name] = None
  return out


def devices() -> dict:
  """The JAX backend's platform (`lstmx.backends.current_platform`: ``cpu``,
  ``cuda``, ``rocm``, ``tpu``), the process count and each local device as
  ``{"id", "kind", "platform"}``."""
  import jax

  from lstmx.backends import current_platform
  return {"platform": current_platform(), "default_backend": jax.default_backend(),
          "process_count": jax.process_count(),
          "devices": [{"id": d.id, "kind": d.device_kind, "platform": d.platform}
                      for d in jax.local_devices()]}


def auto_backends() -> dict[str, str]:
  """What ``backend="auto"`` resolves to on this machine (no mesh) for float32
  parameters: a plain call, with bfloat16 matmul inputs, and with recurrent dropout
  or zoneout reaching the kernel; a call `resolve` refuses reads ``error: ...``."""
  import jax.numpy as jnp

  from lstmx.backends import resolve
  calls = {"float32": {}, "float32, bfloat16 matmuls": {"compute_dtype": jnp.bfloat16},
           "float32, recurrent dropout": {"regularized": True}}
  out = {}
  for what, facts in calls.items():
    try:
      chosen = resolve("auto", dtype=jnp.float32, **facts)
      out[what] = getattr(chosen, "value", chosen)
    except ValueError as e:
      out[what] = f"error: {e}"
  return out


def sweeps() -> dict:
  """How a sweep's trials run here by default (`lstmx.lab.options`): ``workers`` (auto),
  ``cores_per_trial`` (None on a GPU host: one GPU per worker) and this process's cores."""
  from lstmx.lab import local_pool
  from lstmx.lab.options import SweepOptions
  from lstmx.lab.runner import cores_for
  from lstmx.lab.experiment import Experiment
  cores = local_pool.cpu_cores()
  gpus = local_pool.gpu_devices()
  options = SweepOptions(workers="auto")
  per = None if gpus else cores_for(Experiment(name=""), options, len(cores))
  return {"cores": len(cores), "gpus": len(gpus), "cores_per_trial": per,
          "workers": local_pool.worker_count("auto", 10**6, per or 1, cores=len(cores),
                                             gpus=len(gpus))}


def environment() -> dict:
  """``{"versions", "devices", "auto_backend", "sweeps", "executable"}``, see the
  functions above."""
  return {"versions": versions(), "devices": devices(), "auto_backend": auto_backends(),
          "sweeps": sweeps(), "executable": sys.executable}


def format_text(env: dict) -> str:
  """`environment` as the lines ``lstmx info`` prints."""
  dev = env["devices"]
  kinds: dict[str, int] = {}
  for d in dev["devices"]:
    kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
  lines = [f"platform: {dev['platform']} (jax backend {dev['default_backend']}, "
           f"{dev['process_count']} process{'es' if dev['process_count'] != 1 else ''})",
           "devices:  " + ", ".join(f"{n} x {k}" for k, n in kinds.items())]
  lines += ["versions:"] + [f"  {name:<18} {v if v is not None else 'not installed'}"
                            for name, v in env["versions"].items()]
  lines += ['backend="auto" picks:'] + [f"  {what:<28} {name}"
                                        for what, name in env["auto_backend"].items()]
  sw = env.get("sweeps")
  if sw:
    per = ("one GPU per trial" if sw["cores_per_trial"] is None else
           f"{sw['cores_per_trial']} core{'s' if sw['cores_per_trial'] != 1 else ''} per trial "
           f"(of {sw['cores']}; --cores-per-trial)")
    lines.append(f"sweeps:   {sw['workers']} worker{'s' if sw['workers'] != 1 else ''} at "
                 f"--workers auto, {per}")
  lines.append(f"python:   {env['executable']}")
  return "\n".join(lines)
