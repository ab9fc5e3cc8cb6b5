"""Bad input gets a clear error naming the argument, with expected and actual values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import lstmx
from lstmx.lstm import lengths_to_mask

P = lstmx.init_lstm(jax.random.key(0), 3, 4, num_layers=2, bidirectional=True)
X = jnp.ones((2, 5, 3))


@pytest.mark.parametrize("kwargs,x,exc,pattern", [
    ({}, jnp.ones((5, 3)), ValueError, r"x: expected rank 3 \[B, T, D\]; got shape \(5, 3\)"),
    ({}, jnp.ones((2, 5, 4)), ValueError, r"x: expected 3 features.*got shape \(2, 5, 4\)"),
    ({}, jnp.ones((2, 5, 3), jnp.int32), TypeError, r"x: expected a floating dtype; got int32"),
    ({}, jnp.ones((2, 0, 3)), ValueError, r"x: expected T >= 1"),
    ({"seq_lengths": jnp.array([5, 0])}, X, ValueError,
     r"seq_lengths: expected values in \[1, 5\].*min 0"),
    ({"seq_lengths": jnp.array([5, 6])}, X, ValueError,
     r"seq_lengths: expected values in \[1, 5\].*max 6"),
    ({"seq_lengths": jnp.array([5, 2, 3])}, X, ValueError,
     r"seq_lengths: expected shape \(2,\).*got \(3,\)"),
    ({"seq_lengths": jnp.array([5.0, 2.0])}, X, TypeError,
     r"seq_lengths: expected an integer dtype"),
    ({"initial_state": (jnp.zeros((2, 2, 4)), jnp.zeros((4, 2, 4)))}, X, ValueError,
     r"initial_state h_0: expected shape \(4, 2, 4\).*got \(2, 2, 4\)"),
    ({"initial_state": jnp.zeros((4, 2, 4))}, X, ValueError, r"initial_state: expected a pair"),
    ({"backend": "cuda"}, X, ValueError, r"backend must be one of"),
    ({"unroll": 0}, X, ValueError, r"unroll must be a positive int; got unroll=0"),
])
def test_bad_input_raises_clear_error(kwargs, x, exc, pattern):
  with pytest.raises(exc, match=pattern):
    lstmx.lstm(P, x, **kwargs)


def test_bad_params_raise():
  bad = ((P[0][0],), (P[1][0],))  # layer 1 expects 2H inputs from a bidirectional layer 0
  with pytest.raises(ValueError, match=r"params\[1\]\[0\].w_ih: expected shape \(4, 16\); got \(8, 16\)"):
    lstmx.lstm(bad, X)
  with pytest.raises(ValueError, match=r"params\[1\]: expected 2 directions"):
    lstmx.lstm((P[0], P[1][:1]), X)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(init="xavier"), r"init must be one of"),
    (dict(init="chrono"), r"chrono_max_length"),
    (dict(num_layers=0), r"num_layers must be a positive int; got num_layers=0"),
])
def test_bad_init_raises(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    lstmx.init_lstm(jax.random.key(0), 3, 4, **kwargs)


def test_seq_lengths_traced_under_jit_still_checks_shape():
  f = jax.jit(lambda lens: lstmx.lstm(P, X, seq_lengths=lens)[0])
  with pytest.raises(ValueError, match=r"seq_lengths: expected shape \(2,\)"):
    f(jnp.array([1, 2, 3]))


# Issue 18: probes of the public API, each a one-line error naming the argument.

P1 = lstmx.init_lstm(jax.random.key(0), 3, 4)
REG = lstmx.Regularization(recurrent_dropout=0.3)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int64"])
def test_seq_lengths_any_integer_dtype_matches_int32(dtype):
  """uint8 / int8 lengths once overflowed in a [T] index of their own dtype (T=300)."""
  T = 300
  x = jax.random.normal(jax.random.key(1), (2, T, 3))
  lens = np.array([10, 120], np.int32)
  want, (h, c) = lstmx.lstm(P1, x, seq_lengths=lens)
  got, (h2, c2) = lstmx.lstm(P1, x, seq_lengths=lens.astype(dtype))
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  np.testing.assert_array_equal(np.asarray(h2), np.asarray(h))
  np.testing.assert_array_equal(np.asarray(c2), np.asarray(c))


def test_seq_lengths_uint8_above_255_steps_is_not_wrapped():
  """T=300 with lengths [10, 200]: the issue's case (outputs differed by up to 0.69)."""
  x = jax.random.normal(jax.random.key(2), (2, 300, 3))
  want = lstmx.lstm(P1, x, seq_lengths=np.array([10, 200], np.int32))[0]
  got = lstmx.lstm(P1, x, seq_lengths=np.array([10, 200], np.uint8))[0]
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert np.all(np.asarray(got)[0, 10:] == 0.0)


def test_lengths_to_mask_int32_whatever_the_dtype():
  mask = lengths_to_mask(jnp.array([10, 200], jnp.uint8), 300)
  assert mask.shape == (300, 2)
  assert int(mask[:, 0].sum()) == 10 and int(mask[:, 1].sum()) == 200


@pytest.mark.parametrize("lens", [np.array([1.0, 2.0]), np.array([True, True]),
                                  jnp.array([1.0, 2.0], jnp.bfloat16)])
def test_seq_lengths_non_integer_refused(lens):
  with pytest.raises(TypeError, match=r"^seq_lengths: expected an integer dtype; got "):
    lstmx.lstm(P1, X, seq_lengths=lens)


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.int32, jnp.bool_, jnp.uint8, jnp.complex64,
                                   "bogus"])
def test_compute_dtype_only_floating(dtype):
  pattern = r"^compute_dtype: expected None or a floating dtype \(e.g. jnp.bfloat16\); got "
  with pytest.raises(TypeError, match=pattern):
    lstmx.lstm(P1, X, compute_dtype=dtype)
  with pytest.raises(TypeError, match=pattern):
    lstmx.nn.LSTM(3, 4, compute_dtype=dtype, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match=pattern):
    lstmx.nn.LSTMCell(3, 4, compute_dtype=dtype, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("value", ["False", "True", 0, 1, "yes"])
def test_deterministic_only_bool(value):
  pattern = r"^deterministic: expected True, False or None; got "
  with pytest.raises(TypeError, match=pattern):
    lstmx.lstm(P1, X, regularization=REG, key=jax.random.key(0), deterministic=value)
  with pytest.raises(TypeError, match=pattern):
    lstmx.lstm(P1, X, deterministic=value)  # refused even without a regularization
  with pytest.raises(TypeError, match=pattern):
    lstmx.nn.LSTM(3, 4, regularization=REG, deterministic=value, rngs=nnx.Rngs(0, dropout=1))
  layer = lstmx.nn.LSTM(3, 4, regularization=REG, rngs=nnx.Rngs(0, dropout=1))
  with pytest.raises(TypeError, match=pattern):
    layer(X, deterministic=value)


def test_numpy_bool_deterministic_accepted():
  want = lstmx.lstm(P1, X, regularization=REG, deterministic=True)[0]
  got = lstmx.lstm(P1, X, regularization=REG, deterministic=np.bool_(True))[0]
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("name,value", [("time_major", "yes"), ("return_penalties", "no")])
def test_bool_flags_only_bool(name, value):
  with pytest.raises(TypeError, match=rf"^{name}: expected True or False; got '{value}'$"):
    lstmx.lstm(P1, X, **{name: value})


def test_load_params_refuses_structure_mismatch():
  """A 2-layer module once silently kept layer 1's old weights."""
  layer = lstmx.nn.LSTM(3, 4, num_layers=2, rngs=nnx.Rngs(0))
  before = layer.params
  with pytest.raises(ValueError, match=r"^load_params: params: expected num_layers 2 "
                                       r"\(this LSTM's\); got 1"):
    layer.load_params(P1)
  with pytest.raises(ValueError, match=r"expected hidden size 4 \(this LSTM's\); got 5"):
    layer.load_params(lstmx.init_lstm(jax.random.key(0), 3, 5, num_layers=2))
  with pytest.raises(ValueError, match=r"expected input size 3 \(this LSTM's\); got 2"):
    layer.load_params(lstmx.init_lstm(jax.random.key(0), 2, 4, num_layers=2))
  with pytest.raises(ValueError, match=r"expected directions 1 \(this LSTM's\); got 2"):
    layer.load_params(lstmx.init_lstm(jax.random.key(0), 3, 4, num_layers=2,
                                      bidirectional=True))
  with pytest.raises(ValueError, match=r"params\[0\]\[0\].b: expected shape \(16,\); got"):
    p = lstmx.init_lstm(jax.random.key(0), 3, 4, num_layers=2)
    layer.load_params(((lstmx.LSTMParams(p[0][0].w_ih, p[0][0].w_hh, jnp.zeros(12)),), p[1]))
  # Nothing was loaded by the refused calls.
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               layer.params, before)
  new = lstmx.init_lstm(jax.random.key(7), 3, 4, num_layers=2)
  layer.load_params(new)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               layer.params, new)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("init", ["forget_bias", "flax", "torch", "chrono"])
def test_init_lstm_low_precision(dtype, init):
  """float16 / bfloat16 once failed inside LAPACK (the orthogonal init's QR)."""
  kw = dict(chrono_max_length=50) if init == "chrono" else {}
  got = lstmx.init_lstm(jax.random.key(0), 3, 4, num_layers=2, init=init, dtype=dtype, **kw)
  want = lstmx.init_lstm(jax.random.key(0), 3, 4, num_layers=2, init=init, **kw)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == dtype
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w.astype(dtype)))
  layer = lstmx.nn.LSTM(3, 4, param_dtype=dtype, rngs=nnx.Rngs(0))
  assert layer.params[0][0].w_hh.dtype == dtype


@pytest.mark.parametrize("dtype", [jnp.int32, bool, "bogus"])
def test_init_lstm_refuses_non_float_dtype(dtype):
  with pytest.raises(TypeError, match=r"^dtype: expected a floating dtype"):
    lstmx.init_lstm(jax.random.key(0), 3, 4, dtype=dtype)


def test_one_layer_tuple_as_params_is_a_clear_error():
  """``lstm(params[0], x)`` once failed with "'LSTMParams' object is not iterable"."""
  with pytest.raises(TypeError, match=r"^params: expected params\[layer\]\[direction\].*"
                                      r"got a tuple of LSTMParams \(one layer\?\)"):
    lstmx.lstm(P1[0], X)
  with pytest.raises(TypeError, match=r"^params: expected params\[layer\]\[direction\].*"
                                      r"got dict"):
    lstmx.lstm({"w": 1}, X)
  # A single LSTMParams is the documented one-layer shorthand.
  np.testing.assert_array_equal(np.asarray(lstmx.lstm(P1[0][0], X)[0]),
                                np.asarray(lstmx.lstm(P1, X)[0]))


def test_int_params_refused():
  bad = jax.tree.map(lambda a: a.astype(jnp.int32), P1)
  with pytest.raises(TypeError, match=r"^params\[0\]\[0\].w_ih: expected a floating dtype; "
                                      r"got int32$"):
    lstmx.lstm(bad, X)


def test_x_as_nested_list_is_an_array():
  want = lstmx.lstm(P1, X)[0]
  got = lstmx.lstm(P1, np.asarray(X).tolist())[0]
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
  with pytest.raises((TypeError, ValueError), match=r"^x: expected "):
    lstmx.lstm(P1, [[[1.0, 2.0, 3.0]], [[1.0]]])
  with pytest.raises(TypeError, match=r"^x: expected "):
    lstmx.lstm(P1, "abc")


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(hidden_size=True), r"^hidden_size must be a positive int; got hidden_size=True$"),
    (dict(input_size=3.0), r"^input_size must be a positive int; got input_size=3.0$"),
    (dict(num_layers=np.bool_(True)), r"^num_layers must be a positive int"),
    (dict(init="chrono", chrono_max_length="100"),
     r"^init='chrono' needs chrono_max_length .*got chrono_max_length='100'$"),
    (dict(init="chrono", chrono_max_length=2.5), r"got chrono_max_length=2.5$"),
    (dict(forget_bias="x"), r"^forget_bias: expected a finite float; got 'x'$"),
    (dict(init=3), r"^init must be one of"),
])
def test_init_lstm_bad_scalars(kwargs, pattern):
  args = dict(input_size=3, hidden_size=4)
  args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
  with pytest.raises(ValueError, match=pattern):
    lstmx.init_lstm(jax.random.key(0), args["input_size"], args["hidden_size"], **kwargs)


def test_init_lstm_bidirectional_only_bool():
  with pytest.raises(TypeError, match=r"^bidirectional: expected True or False; got 'no'$"):
    lstmx.init_lstm(jax.random.key(0), 3, 4, bidirectional="no")


def test_numpy_scalars_accepted_where_python_numbers_are():
  p = lstmx.init_lstm(jax.random.key(0), np.int64(3), np.int32(4), num_layers=np.int64(2),
                      forget_bias=np.float32(1.0), init="chrono", chrono_max_length=np.int64(9))
  assert p[1][0].w_hh.shape == (4, 16)
  chrono = lstmx.init_lstm(jax.random.key(0), 3, 4, init="chrono", chrono_max_length=9)
  np.testing.assert_array_equal(np.asarray(lstmx.init_lstm(
      jax.random.key(0), 3, 4, init="chrono", chrono_max_length=np.int64(9))[0][0].b),
      np.asarray(chrono[0][0].b))
  reg = lstmx.Regularization(recurrent_dropout=np.float32(0.1), zoneout_c=np.float64(1.0),
                             ar=np.float32(2.0), tar=np.int64(1), variational=np.bool_(False))
  assert reg.recurrent_dropout == pytest.approx(0.1) and reg.ar == 2.0 and reg.tar == 1.0
  assert type(reg.ar) is float and reg.variational is False
  want = lstmx.lstm(P1, X, unroll=2)[0]
  for kw in (dict(unroll=np.int64(2)), dict(unroll=np.int32(2), remat_every=np.int64(2),
                                            backend="scan")):
    np.testing.assert_allclose(np.asarray(lstmx.lstm(P1, X, **kw)[0]), np.asarray(want),
                               rtol=1e-6, atol=1e-6)
  emb = lstmx.embedding_dropout(jnp.ones((5, 3)), jnp.array([0, 1]), np.float32(0.5),
                                jax.random.key(0), deterministic=False)
  assert emb.shape == (2, 3)
  layer = lstmx.nn.LSTM(np.int64(3), np.int64(4), num_layers=np.int64(2), rngs=nnx.Rngs(0))
  assert layer(X)[0].shape == (2, 5, 4)
  assert type(layer.hidden_size) is int


@pytest.mark.parametrize("value", [True, 2.0, "2"])
def test_unroll_not_an_int_refused(value):
  with pytest.raises(ValueError, match=rf"^unroll must be a positive int; got unroll={value!r}$"):
    lstmx.lstm(P1, X, unroll=value)


def test_seq_lengths_under_jit_checked_only_when_concrete():
  """Traced lengths cannot be checked (documented in `lstm`); concrete ones are, also
  when closed over by a jitted function."""
  assert "traced" in lstmx.lstm.__doc__ and "unnoticed" in lstmx.lstm.__doc__
  lens = jnp.array([5, 0])
  f = jax.jit(lambda x: lstmx.lstm(P1, x, seq_lengths=lens)[0])
  with pytest.raises(ValueError, match=r"^seq_lengths: expected values in \[1, 5\]"):
    f(X)
  traced = jax.jit(lambda x, lens: lstmx.lstm(P1, x, seq_lengths=lens)[0])
  assert traced(X, jnp.array([5, 0])).shape == (2, 5, 4)  # unnoticed, as documented


def test_nn_param_dtype_named():
  with pytest.raises(TypeError, match=r"^param_dtype: expected a floating dtype"):
    lstmx.nn.LSTM(3, 4, param_dtype=jnp.int32, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match=r"^param_dtype: expected a floating dtype"):
    lstmx.nn.LSTMCell(3, 4, param_dtype=jnp.int32, rngs=nnx.Rngs(0))
