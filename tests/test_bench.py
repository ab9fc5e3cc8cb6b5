"""Smoke test of `lstmx bench`: every installed implementation builds, runs and is reported."""

import json

import pytest

from lstmx import bench, cli


def test_flops_formula():
  assert bench.lstm_flops(2, 3, 4, "fwd") == 2 * 3 * 2 * (4 + 4) * 16
  assert bench.lstm_flops(2, 3, 4, "train") == 3 * bench.lstm_flops(2, 3, 4, "fwd")


def test_bench_cli_writes_json_and_markdown(tmp_path):
  out, md = tmp_path / "b.json", tmp_path / "b.md"
  assert cli.main(["bench", "--grid", "2,3,4", "--rounds", "1", "--warmup", "1", "--bf16",
                   "--memory", "--memory-lengths", "8", "--memory-remat", "4",
                   "--json", str(out), "--markdown", str(md)]) == 0
  result = json.loads(out.read_text())
  impls = {r["impl"] for r in result["rows"]}
  assert {"lstmx", "lstmx bf16", "flax nnx.RNN(OptimizedLSTMCell)"} <= impls
  assert {r["mode"] for r in result["rows"]} == {"train", "fwd"}
  assert min(r["vs_fastest"] for r in result["rows"]) == pytest.approx(1.0)
  assert [r["remat_every"] for r in result["memory"]] == [None, 4]
  assert "| lstmx |" in md.read_text()
