"""The prepared device check (benchmarks/device_check.py) runs here, on the CPU: the
contract rows compare against the reference (a wrong backend fails), unsupported backends
are recorded as such, and the report is written as JSON and markdown."""

import json
import os

import jax.numpy as jnp
import pytest

from benchmarks import device_check as dc


def test_quick_check_writes_the_report(tmp_path, monkeypatch):
  packed = dc.contract_cases(True)[1:2]
  monkeypatch.setattr(dc, "contract_cases", lambda quick: packed)
  monkeypatch.setattr(dc, "BACKENDS", ("scan", "cudnn"))
  out = str(tmp_path / "dc")
  assert dc.main(["--quick", "--out", out, "--rounds", "1", "--parts", "contract",
                  "benchmark"]) == 0
  report = json.loads(open(os.path.join(out, "device_check.json")).read())
  rows = {(r["backend"], r["dtype"]): r for r in report["contract"]}
  assert rows[("scan", "float32")]["status"] == "pass"
  assert rows[("scan", "float32")]["error"] < 1e-5
  assert rows[("scan", "bfloat16")]["status"] == "pass"
  assert rows[("cudnn", "float32")]["status"] == "unsupported"
  assert "NVIDIA GPU" in rows[("cudnn", "float32")]["message"]
  impls = {r["impl"] for r in report["benchmark"] if r["status"] == "ok"}
  assert {"lstmx scan", "lstmx auto", "flax nnx.RNN(OptimizedLSTMCell)"} <= impls
  assert all(r["vs_fastest"] >= 1.0 for r in report["benchmark"] if r["status"] == "ok")
  text = open(os.path.join(out, "device_check.md")).read()
  assert "(a) backend contract" in text and "| scan | float32 |" in text


def test_newton_rows_time_the_solvers_against_the_scan():
  rows = dc.newton([(2, 16, 4)], 1, float("inf"), lambda: None)
  by = {r["impl"]: r for r in rows}
  assert set(by) == {"scan", "quasi_deer", "block_deer", "deer"}
  assert all(r["status"] == "ok" for r in rows), rows
  assert by["scan"]["vs_scan"] == 1.0
  assert all(by[m]["converged"] and 1 <= by[m]["sweeps"] <= 16
             for m in ("quasi_deer", "block_deer", "deer"))
  text = dc.markdown({"meta": {"command": "c", "date": "d", "device": "cpu", "jax": "0",
                               "versions": "", "peak_gflops": {}, "notes": []},
                      "contract": [], "benchmark": [], "engine": {}, "newton": rows})
  assert "(d) Newton solvers" in text and "| quasi_deer |" in text


def test_a_wrong_backend_fails_the_contract(monkeypatch):
  case = dc.contract_cases(True)[0]
  want = dc._values_and_grads("reference", None, case)
  got = dc._values_and_grads("scan", None, case)
  assert dc.relative_error(got, want) < 1e-5
  y, grads = got
  broken = (y * 1.001, grads)
  assert dc.relative_error(broken, want) > dc.TOLERANCE["float32"]


def test_bad_budget_is_refused(tmp_path, capsys):
  with pytest.raises(SystemExit):
    dc.main(["--out", str(tmp_path), "--budget-s", "0"])
  assert "--budget-s: expected a positive number" in capsys.readouterr().err
