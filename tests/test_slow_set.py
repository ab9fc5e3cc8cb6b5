"""The slow set (tests/conftest.py): listed or marked tests run after the others, and
under --budget start only while the session is under its budget."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TESTS = '''
import pytest

def test_listed():
  pass

def test_fast():
  pass

@pytest.mark.slow
def test_marked():
  pass
'''


def _run(tmp_path, *args):
  shutil.copy(os.path.join(ROOT, "tests", "conftest.py"), tmp_path / "conftest.py")
  (tmp_path / "slow.txt").write_text("# comment\ntest_x.py::test_listed\n")
  (tmp_path / "test_x.py").write_text(TESTS)
  out = subprocess.run([sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider",
                        "-p", "no:randomly", "-W", "ignore::pytest.PytestUnknownMarkWarning",
                        *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stdout + out.stderr
  return out.stdout


def test_slow_tests_run_last_and_all_without_a_budget(tmp_path):
  out = _run(tmp_path)
  order = [line.split("::")[1].split()[0] for line in out.splitlines()
           if line.startswith("test_x.py::")]
  assert order[0] == "test_fast" and set(order[1:]) == {"test_listed", "test_marked"}, out
  assert "3 passed" in out, out


def test_a_spent_budget_skips_the_slow_tests_with_the_reason(tmp_path):
  out = _run(tmp_path, "--budget", "0.001")
  assert "1 passed, 2 skipped" in out, out
  assert "slow test not started: the session's budget of 0 s is spent" in out, out
  assert "pytest -m slow" in out, out
