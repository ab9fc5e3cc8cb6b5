"""Synthetic tasks: analytic baselines against Monte-Carlo estimates from the
generators, determinism, shapes, and clear errors."""

import collections
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx.tasks as tasks

SMALL = {
    "copy": dict(delay=5, num_symbols=3, num_categories=3),
    "variable_copy": dict(delay=6, num_symbols=2, num_categories=3),
    "selective_copy": dict(delay=6, num_symbols=2, num_categories=3),
    "adding": dict(length=20),
    "associative_recall": dict(num_pairs=2, num_keys=3, num_values=3),
    "mqar": dict(length=8, num_pairs=2, vocab_size=8),
    "parity": dict(train_length=6, test_length=9),
    "even_pairs": dict(train_length=6, test_length=9),
    "cycle_navigation": dict(train_length=6, test_length=9),
}


def memoryless_entropy(batch) -> float:
  """Plug-in estimate of H(target | position, current input), weighted by the mask."""
  inputs = np.asarray(batch["inputs"])
  targets, mask = np.asarray(batch["targets"]), np.asarray(batch["mask"])
  counts = collections.defaultdict(collections.Counter)
  for b, t in zip(*np.nonzero(mask)):
    counts[(t, inputs[b, t].tobytes())][targets[b, t]] += 1
  total = mask.sum()
  h = 0.0
  for c in counts.values():
    n = sum(c.values())
    p = np.array(list(c.values())) / n
    h += n / total * -np.sum(p * np.log(p))
  return h


def test_registry_lists_every_task():
  assert set(tasks.names()) == set(SMALL) | {"sequential_images", "classify", "char_lm",
                                             "forecast", "stream_lm"}


def test_sequential_digits_pixels_and_permuted():
  pytest.importorskip("sklearn")
  task = tasks.make("sequential_images")
  batch = task.sample(jax.random.key(0), 32, split="validation")
  assert batch["inputs"].shape == (32, 64, 1) and task.output_size == 10
  assert 0.0 <= float(batch["inputs"].min()) and float(batch["inputs"].max()) <= 1.0
  assert task.baseline_loss == pytest.approx(math.log(10), rel=0.01)
  perm = tasks.make("sequential_images", permuted=True)
  pb = perm.sample(jax.random.key(0), 32, split="validation")
  np.testing.assert_array_equal(pb["targets"], batch["targets"])
  assert not np.array_equal(pb["inputs"], batch["inputs"])
  np.testing.assert_allclose(np.sort(np.asarray(pb["inputs"]), axis=1),
                             np.sort(np.asarray(batch["inputs"]), axis=1))
  rows = tasks.make("sequential_images", layout="rows").sample(jax.random.key(0), 4)
  assert rows["inputs"].shape == (4, 8, 8)
  with pytest.raises(ValueError, match="sequential_images.dataset: expected one of"):
    tasks.make("sequential_images", dataset="cifar")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_baseline_matches_monte_carlo(name):
  task = tasks.make(name, **SMALL[name])
  batch = jax.jit(task.sample, static_argnums=1)(jax.random.key(0), 40000)
  if task.kind == "regression":
    t = np.asarray(batch["targets"])[np.asarray(batch["mask"]) > 0]
    estimate = float(np.var(t))
  else:
    estimate = memoryless_entropy(batch)
  assert estimate == pytest.approx(task.baseline_loss, rel=0.03, abs=2e-3)


def test_copy_baseline_is_arjovsky_formula():
  for T in (10, 100, 1000):
    assert tasks.make("copy", delay=T).baseline_loss == pytest.approx(10 * math.log(8) / (T + 20))


def test_copy_defaults_are_the_papers_and_its_longest_dependency():
  task = tasks.make("copy", delay=30)
  assert (task.num_symbols, task.num_categories) == (10, 8)  # Arjovsky et al. 2016
  assert task.longest_dependency == 40 and task.length == 50
  batch = task.sample(jax.random.key(0), 64)
  ids = np.asarray(batch["inputs"]).argmax(-1)
  # the first symbol, read at step 0, is the target at step delay + S = 40
  targets = np.asarray(batch["targets"])
  np.testing.assert_array_equal(targets[:, 40:], ids[:, :10])
  assert np.all(targets[:, :40] == 0) and np.all((ids[:, :10] >= 1) & (ids[:, :10] <= 8))
  assert np.all(np.asarray(batch["recall"]).sum(1) == 10)
  assert tasks.make("selective_copy").length == 4096  # Gu & Dao 2023


def test_longest_dependencies():
  assert tasks.make("adding", length=200).longest_dependency == 199
  assert tasks.make("selective_copy", delay=64, num_symbols=4).longest_dependency == 64
  assert tasks.make("mqar", length=64).longest_dependency == 63
  assert tasks.make("variable_copy", delay=20, num_symbols=5).longest_dependency == 25


def test_mqar_follows_zoology():
  N, V, T = 4, 16, 24
  task = tasks.make("mqar", length=T, num_pairs=N, vocab_size=V)
  assert task.baseline_loss == pytest.approx(math.log(8))
  assert task.bag_of_values_loss == pytest.approx(math.log(4))
  batch = task.sample(jax.random.key(0), 20000)
  ids = np.asarray(batch["inputs"]).argmax(-1)
  targets, mask = np.asarray(batch["targets"]), np.asarray(batch["mask"]) > 0
  keys, values = ids[:, 0:2 * N:2], ids[:, 1:2 * N:2]
  assert keys.min() >= 1 and keys.max() < V // 2 and values.min() >= V // 2
  assert values.max() < V
  for a in (keys, values):  # distinct within each sequence
    assert np.all(np.diff(np.sort(a, axis=1), axis=1) > 0)
  assert np.all(mask.sum(1) == N) and not mask[:, :2 * N].any()
  rows, pos = np.nonzero(mask)
  assert np.all((pos - 2 * N) % 2 == 0)  # queries at even offsets: 2N + 2 g
  # each query is one of the row's keys, each key queried once, its target the value
  which = np.argmax(keys[rows] == ids[rows, pos][:, None], axis=1)
  assert np.all(keys[rows, which] == ids[rows, pos])
  np.testing.assert_array_equal(np.sort(which.reshape(-1, N), axis=1),
                                np.tile(np.arange(N), (len(ids), 1)))
  np.testing.assert_array_equal(targets[rows, pos], values[rows, which] - V // 2)
  # filler: random tokens over the whole vocabulary, not blanks
  filler = ids[:, 2 * N:][~mask[:, 2 * N:]]
  counts = np.bincount(filler, minlength=V) / filler.size
  np.testing.assert_allclose(counts, 1 / V, atol=0.01)
  # gaps: key 1's gap follows p(g) ~ (g + 1) ** (a - 1), most mass at short gaps
  first = (pos.reshape(-1, N)[np.arange(len(ids)), np.argmin(
      which.reshape(-1, N), axis=1)] - 2 * N) // 2
  p = task.gap_probabilities()
  assert p[0] > 2 * p[-1] and np.all(np.diff(p) < 0)
  freq = np.bincount(first, minlength=len(p)) / len(first)
  np.testing.assert_allclose(freq, p, atol=0.012)
  uniform = tasks.make("mqar", length=T, num_pairs=N, vocab_size=V, power_a=1.0)
  np.testing.assert_allclose(uniform.gap_probabilities(), 1 / len(p))


def test_adding_baselines():
  assert tasks.make("adding").baseline_loss == pytest.approx(1 / 6)
  task = tasks.make("adding", form="hochreiter1997", length=100)
  batch = task.sample(jax.random.key(1), 100000)
  t = np.asarray(batch["targets"])[np.asarray(batch["mask"]) > 0]
  assert np.mean(t) == pytest.approx(0.5, abs=2e-3)
  assert np.var(t) == pytest.approx(task.baseline_loss, rel=0.02)
  x = np.asarray(batch["inputs"])
  assert np.all(np.sum(x[..., 1] == 1.0, axis=1) == 2)
  # the one-value plateau: knowing the second marked value only leaves Var(X1)
  task = tasks.make("adding", length=50)
  batch = task.sample(jax.random.key(2), 50000)
  x, y = np.asarray(batch["inputs"]), np.asarray(batch["targets"])[:, -1]
  second = np.sum(x[:, 25:, 0] * x[:, 25:, 1], axis=1)
  assert np.mean((y - second - 0.5) ** 2) == pytest.approx(task.one_value_loss, rel=0.03)
  assert task.one_value_loss == pytest.approx(0.5 * task.baseline_loss)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_deterministic_shapes_and_dtypes(name):
  task = tasks.make(name, **SMALL[name])
  a = task.sample(jax.random.key(3), 16)
  b = task.sample(jax.random.key(3), 16)
  c = task.sample(jax.random.key(4), 16)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert any(not np.array_equal(a[k], c[k]) for k in ("inputs", "targets"))
  T = a["inputs"].shape[1]
  assert a["inputs"].shape == (16, T, task.input_size) and a["inputs"].dtype == jnp.float32
  assert a["targets"].shape == a["mask"].shape == (16, T)
  assert a["targets"].dtype == (jnp.int32 if task.kind == "classification" else jnp.float32)
  assert a["lengths"].shape == (16,) and int(a["lengths"].max()) <= T
  assert float(a["mask"].sum()) > 0
  if task.kind == "classification":
    assert int(a["targets"].max()) < task.output_size


def test_perfect_predictions_are_solved_and_baseline_is_not():
  for name in sorted(SMALL):
    task = tasks.make(name, **SMALL[name])
    split = "test" if name in ("parity", "even_pairs", "cycle_navigation") else "train"
    batch = task.sample(jax.random.key(5), 64, split=split)
    if task.kind == "classification":
      perfect = 10.0 * jax.nn.one_hot(batch["targets"], task.output_size)
      blind = jnp.zeros_like(perfect)
    else:
      perfect = batch["targets"][..., None]
      blind = jnp.full_like(perfect, 1.0)
    assert task.solved(task.metrics(perfect, batch)), name
    assert not task.solved(task.metrics(blind, batch)), name


def test_length_generalization_splits():
  task = tasks.make("parity", train_length=10, test_length=30)
  train = task.sample(jax.random.key(0), 500)
  test = task.sample(jax.random.key(0), 500, split="test")
  assert int(train["lengths"].min()) >= 1 and int(train["lengths"].max()) <= 10
  assert int(test["lengths"].min()) >= 11 and int(test["lengths"].max()) <= 30
  # parity label equals the sum of ones mod 2 over the valid part
  x, n = np.asarray(test["inputs"]), np.asarray(test["lengths"])
  label = np.asarray(test["targets"])[np.arange(500), n - 1]
  np.testing.assert_array_equal(label, x[..., 1].sum(1) % 2)


def test_even_pairs_is_first_equals_last():
  task = tasks.make("even_pairs")
  batch = task.sample(jax.random.key(2), 300)
  x, n = np.asarray(batch["inputs"]).argmax(-1), np.asarray(batch["lengths"])
  label = np.asarray(batch["targets"])[np.arange(300), n - 1]
  np.testing.assert_array_equal(label, (x[:, 0] == x[np.arange(300), n - 1]).astype(int))


@pytest.mark.parametrize("call,pattern", [
    (lambda: tasks.make("copy", delay=0), r"copy.delay: expected an int >= 1; got 0"),
    (lambda: tasks.make("nope"), r"task: expected one of .*got 'nope'"),
    (lambda: tasks.make("copy", length=3), r"copy: unknown parameter\(s\) \['length'\]"),
    (lambda: tasks.make("adding", form="x"), r"adding.form: expected"),
    (lambda: tasks.make("mqar", length=6, num_pairs=2), r"mqar.length: expected an int >= 8"),
    (lambda: tasks.make("mqar", length=9, num_pairs=2), r"mqar.length: expected an even"),
    (lambda: tasks.make("mqar", power_a=0.0), r"mqar.power_a: expected a number in \(0, 1\]"),
    (lambda: tasks.make("parity").sample(jax.random.key(0), 2, split="dev"),
     r"split: expected one of"),
])
def test_bad_parameters_raise(call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()


def test_dataset_classification_train_size_and_noise():
  pytest.importorskip("sktime")
  task = tasks.make("classify", dataset="gunpoint", train_size=20, label_noise=0.25)
  x, y, k = task.arrays("train")
  assert x.shape == (20, 150, 1) and k == 2
  assert abs(float(x.mean())) < 1e-5  # standardized with train statistics
  clean = tasks.make("classify", dataset="gunpoint", train_size=20).arrays("train")[1]
  assert int(np.sum(clean != y)) == 5
  batch = task.sample(jax.random.key(0), 8, split="test")
  assert batch["inputs"].shape == (8, 150, 1)
  assert task.baseline_loss == pytest.approx(math.log(2), rel=0.01)


def test_char_lm_windows_and_bigram_baseline():
  try:
    task = tasks.make("char_lm", seq_len=20, train_size=20000)
    batch = task.sample(jax.random.key(0), 4)
  except Exception as e:  # noqa: BLE001
    pytest.skip(f"shakespeare not available: {e}")
  x, t = np.asarray(batch["inputs"]).argmax(-1), np.asarray(batch["targets"])
  np.testing.assert_array_equal(x[:, 1:], t[:, :-1])  # targets are the next characters
  assert 0.5 < task.baseline_loss < math.log(task.output_size)
  with pytest.raises(ValueError, match="char_lm.train_size: expected more than"):
    tasks.make("char_lm", seq_len=20, train_size=10)


def test_forecast_persistence_baseline():
  pytest.importorskip("pmdarima")
  task = tasks.make("forecast", dataset="sunspots", window=24)
  batch = task.sample(jax.random.key(0), 512)
  x, y = np.asarray(batch["inputs"])[:, -1, 0], np.asarray(batch["targets"])[:, -1]
  assert np.mean((x - y) ** 2) == pytest.approx(task.baseline_loss, rel=0.25)
  perfect = batch["targets"][..., None]
  assert task.solved(task.metrics(perfect, batch))


def test_splits_of_one_distribution_share_the_program_that_draws_their_sets():
  """A synthetic task's three evaluation sets are different examples drawn by one compiled
  program (the split's key is an argument); a length-generalization task's test split is
  its own distribution (longer sequences), so its own program."""
  from lstmx.tasks.base import _draw_examples
  copy = tasks.make("copy", delay=7, num_symbols=3, num_categories=4)
  assert [copy.distribution(s) for s in ("train", "validation", "test")] == ["train"] * 3
  before = _draw_examples._cache_size()
  sets = {s: next(copy.eval_batches(s, 8, 8))["inputs"] for s in ("train", "validation", "test")}
  assert _draw_examples._cache_size() == before + 1
  assert not np.array_equal(sets["validation"], sets["test"])
  assert not np.array_equal(sets["train"], sets["validation"])
  parity = tasks.make("parity", train_length=5, test_length=9)
  assert [parity.distribution(s) for s in ("train", "validation", "test")] == [
      "train", "train", "test"]
  valid = next(parity.eval_batches("validation", 8, 8))["lengths"]
  test = next(parity.eval_batches("test", 8, 8))["lengths"]
  assert int(valid.max()) <= 5 < int(test.min())


def _order_free_oracle(task, batch, recall):
  """Logits [B, T, K+1] of the order-free predictor: at the recall steps (`recall` [B, T],
  S per row) the log of the shown symbols' frequencies N / S, whose argmax is a most
  frequent symbol; elsewhere blank for certain."""
  S, K = task.num_symbols, task.num_categories
  recall = np.asarray(recall) > 0
  targets = np.asarray(batch["targets"])
  symbols = targets[recall].reshape(len(targets), S)  # the order is not used: only counts
  counts = np.stack([(symbols == k).sum(1) for k in range(K + 1)], axis=1)  # [B, K+1]
  counts[:, 0] = 0
  probs = np.where(recall[..., None], counts[:, None, :] / S, np.eye(K + 1)[0])
  return jnp.asarray(np.log(np.maximum(probs, 1e-30)), jnp.float32)


@pytest.mark.parametrize("name, params", [
    ("copy", dict(delay=3, num_symbols=5, num_categories=8)),
    ("selective_copy", dict(delay=8, num_symbols=4, num_categories=3))])
def test_order_free_floor_matches_an_oracle_on_sampled_batches(name, params):
  """The exact floor against the order-free oracle run on 20000 sampled sequences:
  the per-sequence score's standard deviation is < 0.2, so its mean's standard error is
  < 0.0015; tolerance 0.008 (over 5 standard errors)."""
  task = tasks.make(name, **params)
  batch = jax.jit(task.sample, static_argnums=1)(jax.random.key(3), 20000)
  recall = batch["recall"] if name == "copy" else batch["mask"]
  m = task.metrics(_order_free_oracle(task, batch, recall), batch)
  accuracy = m["copy_accuracy"] if name == "copy" else m["accuracy"]
  assert float(accuracy) == pytest.approx(task.order_free_accuracy, abs=0.008)
  assert float(m["loss"]) == pytest.approx(task.order_free_loss, rel=0.02)
  # Below the solved rule, above chance on the recalled symbols (1 / K).
  assert 1 / task.num_categories < task.order_free_accuracy < 0.99
  assert not task.solved(m)
  assert task.order_free_loss < task.baseline_loss


def test_order_free_floor_small_cases_by_hand_and_by_enumeration():
  import itertools
  from lstmx.tasks.memory import order_free_floor
  # S = 2, K = 2: equal pair (prob 1/2) scores 1, a mixed pair 1/2 -> 3/4; entropy ln 2 / 2.
  assert order_free_floor(2, 2) == pytest.approx((0.75, math.log(2) / 2), rel=1e-12)
  for S, K in ((3, 2), (4, 3), (3, 5)):  # every sequence, equally likely
    acc = ent = 0.0
    for seq in itertools.product(range(K), repeat=S):
      n = np.bincount(seq, minlength=K)
      acc += n.max() / S
      ent += -sum(c / S * math.log(c / S) for c in n if c)
    assert order_free_floor(S, K) == pytest.approx((acc / K ** S, ent / K ** S), rel=1e-12)
  # The figure: minLSTM's 0.625 x baseline on copy (S = 5, K = 8) is this floor.
  copy = tasks.make("copy", delay=20, num_symbols=5, num_categories=8)
  assert copy.order_free_loss / copy.baseline_loss == pytest.approx(0.6197, abs=1e-4)
  assert copy.order_free_accuracy == pytest.approx(0.3865, abs=1e-4)
  assert tasks.make("variable_copy", delay=20, num_symbols=5).order_free_loss == \
      pytest.approx(copy.order_free_loss)
  assert tasks.make("selective_copy").order_free_accuracy == pytest.approx(0.2036, abs=1e-4)
  assert tasks.make("adding").order_free_accuracy is None  # not a copy task
