"""lstmx.data.ngram: interpolated Kneser-Ney (Chen & Goodman 1998) against hand-computed
probabilities on a toy corpus, normalization of every conditional, the discount formula,
perplexity orderings, and the errors on bad input."""

import math
import re
from collections import Counter

import numpy as np
import pytest

from lstmx.data.ngram import UNK, KneserNey, Unigram, discount_from_counts

TOY = "a b a c a b a b c a b a c b a b a c a b c a b a".split()   # 24 tokens


def test_toy_hand_counts_are_right():
  """The literals the hand computations below use, checked against the toy corpus."""
  p = ["<s>", "<s>"] + TOY
  tri = Counter(zip(p, p[1:], p[2:]))
  assert tri == {("<s>", "<s>", "a"): 1, ("<s>", "a", "b"): 1, ("a", "b", "a"): 5,
                 ("a", "b", "c"): 2, ("a", "c", "a"): 2, ("a", "c", "b"): 1,
                 ("b", "a", "b"): 2, ("b", "a", "c"): 3, ("b", "c", "a"): 2,
                 ("c", "a", "b"): 4, ("c", "b", "a"): 1}
  bigram_continuation = Counter(g[1:] for g in tri)   # N1+(• v w)
  assert bigram_continuation == {("<s>", "a"): 1, ("a", "b"): 3, ("a", "c"): 1, ("b", "a"): 2,
                                 ("b", "c"): 1, ("c", "a"): 2, ("c", "b"): 1}
  unigram_continuation = Counter(g[1:] for g in bigram_continuation)   # N1+(• w)
  assert unigram_continuation == {("a",): 3, ("b",): 2, ("c",): 2}


# Hand computation on TOY, order 3, estimated discounts; |V| = 4 (a, b, c, UNK).
# Trigram count-of-counts: n1 = 4 (<s><s>a, <s>ab, acb, cba), n2 = 4 (abc, aca, bab, bca).
D3 = 4 / (4 + 2 * 4)
# Bigram continuation counts: n1 = 4 (<s>a, ac, bc, cb), n2 = 2 (ba, ca).
D2 = 4 / (4 + 2 * 2)
# Unigram continuation counts 3, 2, 2: n1 = 0, so n1/(n1+2n2) = 0, clipped up to 0.05.
D1 = 0.05
P0 = 1 / 4


def _p1(cont):
  """p_1(w) = max(N1+(• w) - D1, 0) / N1+(••) + D1 * 3 types / 7 * 1/|V|; N1+(••) = 3+2+2."""
  return max(cont - D1, 0) / 7 + D1 * 3 / 7 * P0


def test_toy_probabilities_match_hand_computation():
  model = KneserNey(order=3).fit(TOY)
  # p(a | a b): trigram c(a b a) = 5, c(a b •) = 5 + 2, N1+(a b •) = 2;
  # bigram (b,): N1+(• b a) = 2, N1+(• b •) = 2 + 1, 2 types; unigram N1+(• a) = 3.
  p2_a_b = (2 - D2) / 3 + D2 * 2 / 3 * _p1(3)
  p3 = (5 - D3) / 7 + D3 * 2 / 7 * p2_a_b
  assert model.prob(["a", "b"], "a") == pytest.approx(p3, rel=1e-12)
  assert p3 == pytest.approx(0.7278344671, rel=1e-9)
  # p(b | c c): trigram context unseen -> bigram (c,): N1+(• c b) = 1, N1+(• c •) = 2 + 1,
  # 2 types; unigram N1+(• b) = 2.
  p2_b_c = (1 - D2) / 3 + D2 * 2 / 3 * _p1(2)
  assert model.prob(["c", "c"], "b") == pytest.approx(p2_b_c, rel=1e-12)
  # An unseen word is UNK: no count at any order, only the interpolation weights.
  p_unk = D3 * 2 / 7 * (D2 * 2 / 3 * (D1 * 3 / 7 * P0))
  assert model.prob(["a", "b"], "zz") == pytest.approx(p_unk, rel=1e-12)
  assert model.prob(["a", "b"], UNK) == model.prob(["a", "b"], "zz")
  # The stream's first word: context (<s>, <s>), seen once, followed by a.
  # Trigram: c(<s> <s> a) = 1, total 1, 1 type; bigram (<s>,): N1+(• <s> a) = 1, total 1.
  p2_a_start = (1 - D2) / 1 + D2 * 1 / 1 * _p1(3)
  assert model.prob([], "a") == pytest.approx((1 - D3) + D3 * p2_a_start, rel=1e-12)


def test_discounts_from_count_of_counts():
  assert KneserNey(order=3).fit(TOY).discounts == pytest.approx([D1, D2, D3])
  # n1 = 2 (x, y), n2 = 1 (z), one count of 3: D = 2 / (2 + 2*1).
  assert discount_from_counts(Counter({"x": 1, "y": 1, "z": 2, "w": 3})) == pytest.approx(0.5)
  # n1 = 3, n2 = 3: D = 3 / 9.
  assert discount_from_counts(Counter(dict.fromkeys("abc", 1) | dict.fromkeys("def", 2))) \
      == pytest.approx(1 / 3)
  # No doubletons: the formula's 1 is clipped to 0.95.
  assert discount_from_counts(Counter({"x": 1, "y": 1})) == pytest.approx(0.95)
  # A given discount replaces every order's estimate.
  assert KneserNey(order=3, discount=0.7).fit(TOY).discounts == [0.7, 0.7, 0.7]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("discount", [None, 0.3])
def test_every_conditional_sums_to_one(order, discount):
  model = KneserNey(order=order, discount=discount).fit(TOY)
  vocabulary = ["a", "b", "c", UNK]
  contexts = [[], ["a"], ["a", "b"], ["c", "c"], ["b", "a", "c"], ["zz", "a"], ["zz", "zz", "zz"]]
  for context in contexts:
    probs = [model.prob(context, w) for w in vocabulary]
    assert min(probs) > 0
    assert sum(probs) == pytest.approx(1.0, abs=1e-12), context
  # A larger declared vocabulary: each of its 10 - 3 unseen words has p(UNK).
  model = KneserNey(order=order, discount=discount).fit(TOY, vocab_size=10)
  for context in contexts:
    total = sum(model.prob(context, w) for w in "abc") + 7 * model.prob(context, UNK)
    assert total == pytest.approx(1.0, abs=1e-12), context


def test_log_prob_stream_is_every_token_once_in_its_stream_context():
  model = KneserNey(order=3).fit(TOY)
  held_out = "b a c a zz b a b c".split()
  nll, count = model.log_prob_stream(held_out)
  assert count == len(held_out)
  expected = -sum(math.log(model.prob(held_out[:i], w)) for i, w in enumerate(held_out))
  assert nll == pytest.approx(expected, rel=1e-12)
  assert model.perplexity(held_out) == pytest.approx(math.exp(expected / len(held_out)))


def _markov_stream(n, seed, types=30, successors=2):
  """A second-order Markov stream: each pair of previous words has `successors` next words."""
  rng = np.random.default_rng(0)   # the chain is fixed; seed picks the sample path
  table = rng.integers(0, types, size=(types, types, successors))
  path = np.random.default_rng(seed + 1)
  out = [0, 1]
  for choice in path.integers(0, successors, size=n):
    out.append(int(table[out[-2], out[-1], choice]))
  return out[2:]


def test_perplexity_orderings_on_a_structured_stream():
  train, held_out = _markov_stream(20_000, seed=0), _markov_stream(5_000, seed=1)
  trigram, unigram = KneserNey(order=3).fit(train), Unigram().fit(train)
  shuffled = list(np.random.default_rng(2).permutation(held_out))
  assert trigram.perplexity(train) < trigram.perplexity(shuffled)
  assert trigram.perplexity(held_out) < trigram.perplexity(shuffled)
  # The chain has 2 successors per context: the trigram is near 2, the unigram far above.
  assert trigram.perplexity(held_out) < 2.5
  assert unigram.perplexity(held_out) >= 3 * trigram.perplexity(held_out)


def test_unigram_on_a_uniform_stream_is_near_vocabulary_size():
  rng = np.random.default_rng(0)
  train, held_out = rng.integers(0, 50, 50_000).tolist(), rng.integers(0, 50, 20_000).tolist()
  model = Unigram().fit(train)
  assert model.vocab_size == 51                            # 50 types + UNK
  assert model.perplexity(held_out) == pytest.approx(50, rel=0.01)
  # Add-one: an unseen word gets 1 / (N + |V|); the distribution over V sums to 1.
  assert model.prob((), "never") == pytest.approx(1 / (50_000 + 51))
  assert sum(model.prob((), w) for w in list(range(50)) + [UNK]) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, name, value", [
    ({"order": 0}, "order", "0"), ({"order": -2}, "order", "-2"),
    ({"order": 2.5}, "order", "2.5"), ({"discount": 0.0}, "discount", "0.0"),
    ({"discount": 1.0}, "discount", "1.0"), ({"discount": 1.5}, "discount", "1.5"),
    ({"discount": -0.1}, "discount", "-0.1")])
def test_bad_arguments_raise(kwargs, name, value):
  with pytest.raises(ValueError, match=rf"^{name}: expected .*; got {re.escape(value)}$"):
    KneserNey(**kwargs)


def test_bad_streams_raise():
  for model in (KneserNey(order=3), Unigram()):
    with pytest.raises(ValueError, match=r"^tokens: expected a non-empty token stream; got 0"):
      model.fit([])
    with pytest.raises(ValueError, match=r"^model: expected a fitted model"):
      model.prob([], "a")
    model.fit(TOY)
    with pytest.raises(ValueError, match=r"^tokens: expected a non-empty token stream; got 0"):
      model.perplexity([])
    with pytest.raises(ValueError, match=r"^vocab_size: expected an int >= 4 .*; got 3$"):
      model.fit(TOY, vocab_size=3)
