"""Smoke test of `benchmarks/bench.py`: every installed implementation builds, runs and is reported.

The benchmarks live beside the package (not in the wheel): the repository root goes on sys.path.
Peers whose package is absent (equinox: the `bench` extra; torch) are skipped and noted, not failed.
"""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks import bench  # noqa: E402


def test_flops_formula():
  assert bench.lstm_flops(2, 3, 4, "fwd") == 2 * 3 * 2 * (4 + 4) * 16
  assert bench.lstm_flops(2, 3, 4, "train") == 3 * bench.lstm_flops(2, 3, 4, "fwd")


def test_bench_writes_json_and_markdown(tmp_path):
  out, md = tmp_path / "b.json", tmp_path / "b.md"
  assert bench.main(["--grid", "2,3,4", "--rounds", "1", "--warmup", "1", "--bf16",
                     "--gemm-only",
                     "--memory", "--memory-lengths", "8", "--memory-remat", "4",
                     "--json", str(out), "--markdown", str(md)]) == 0
  result = json.loads(out.read_text())
  impls = {r["impl"] for r in result["rows"]}
  assert {"lstmx", "lstmx bf16", bench.GEMM_ONLY, "flax nnx.RNN(OptimizedLSTMCell)"} <= impls
  assert {r["mode"] for r in result["rows"]} == {"train", "fwd"}
  peers = [r for r in result["rows"] if r["impl"] != bench.GEMM_ONLY]
  assert min(r["vs_fastest"] for r in peers) == pytest.approx(1.0)
  assert [r["remat_every"] for r in result["memory"]] == [None, 4]
  assert "| lstmx |" in md.read_text()


def test_gemm_skeleton_runs_every_gemm_of_the_step(x64):
  """The skeleton against a loop of its equations in float64: no GEMM is dropped or changed."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from benchmarks.skeleton import gemm_skeleton
  B, T, D, H = 3, 5, 4, 2
  rng = np.random.default_rng(0)
  w_ih, w_hh = rng.normal(size=(D, 4 * H)), rng.normal(size=(H, 4 * H))
  x = rng.normal(size=(B, T, D))
  h, zs, hs = np.zeros((B, H)), [], []
  for t in range(T):
    z = np.tanh(x[:, t] @ w_ih + h @ w_hh)
    h = z[:, :H] * z[:, H:2 * H] + z[:, 2 * H:3 * H] * z[:, 3 * H:]
    zs.append(z)
    hs.append(h)
  g, dzs = np.ones((B, H)), [None] * T
  for t in reversed(range(T)):
    dzs[t] = zs[t] * np.tile(g, (1, 4))
    g = dzs[t] @ w_hh.T
  h_prev = [np.zeros((B, H))] + hs[:-1]
  want = (sum(x[:, t].T @ dzs[t] for t in range(T)),
          sum(h_prev[t].T @ dzs[t] for t in range(T)),
          np.stack([dzs[t] @ w_ih.T for t in range(T)], axis=1))
  args = [jnp.asarray(a, jnp.float64) for a in (w_ih, w_hh, x)]
  got = jax.jit(gemm_skeleton, static_argnames="mode")(*args, mode="train")
  hs_got = jax.jit(gemm_skeleton, static_argnames="mode")(*args, mode="fwd")
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), b, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(np.asarray(hs_got), np.stack(hs, axis=1), rtol=1e-12)
