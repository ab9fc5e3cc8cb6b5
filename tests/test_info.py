"""``lstmx info``: devices, versions and the backend ``auto`` picks, on this CPU."""

import importlib.metadata
import json
import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp

from lstmx import _version
from lstmx.lab import info
from lstmx.backends import resolve
from lstmx.kernels import dispatch
from lstmx.lab import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_environment_reports_this_machine():
  env = info.environment()
  v = env["versions"]
  assert v["lstmx"] == _version.__version__ and v["python"] == platform.python_version()
  assert v["jax"] == jax.__version__ and v["jaxlib"] == importlib.metadata.version("jaxlib")
  for name in ("flax", "optax", "orbax-checkpoint"):
    assert v[name] == importlib.metadata.version(name)
  assert "jax-cuda13-plugin" not in v  # optional packages only where installed
  dev = env["devices"]
  assert dev["platform"] == "cpu" and dev["default_backend"] == "cpu"
  assert len(dev["devices"]) == jax.local_device_count()
  assert {d["platform"] for d in dev["devices"]} == {"cpu"}
  # The dispatcher's own answers (scan on a CPU).
  assert env["auto_backend"]["float32"] == resolve("auto", dtype=jnp.float32).value == "scan"
  assert set(env["auto_backend"].values()) == {"scan"}


def test_auto_backends_ask_the_dispatcher(monkeypatch):
  """On an NVIDIA GPU auto picks cuDNN for a plain float32 call, scan where cuDNN
  cannot run the call (bf16 matmuls, recurrent dropout)."""
  monkeypatch.setattr(dispatch, "current_platform", lambda: "cuda")
  assert info.auto_backends() == {"float32": "cudnn", "float32, bfloat16 matmuls": "scan",
                                  "float32, recurrent dropout": "scan"}


def test_cli_prints_info(capsys):
  assert cli.main(["info"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("platform: cpu (jax backend cpu, 1 process)")
  assert f"  jax                {jax.__version__}\n" in out
  assert 'backend="auto" picks:\n  float32                      scan' in out
  assert cli.main(["info", "--json"]) == 0
  assert json.loads(capsys.readouterr().out)["auto_backend"]["float32"] == "scan"


def test_python_dash_m_lstmx_info():
  env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
         "JAX_PLATFORMS": "cpu"}
  out = subprocess.run([sys.executable, "-m", "lstmx", "info", "--json"], env=env,
                       capture_output=True, text=True, timeout=120, check=True).stdout
  assert json.loads(out)["devices"]["platform"] == "cpu"
