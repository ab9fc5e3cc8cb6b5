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


# --- issue 30: the last errors that named nothing ------------------------------------------

def _digits_task(**params):
  from lstmx import tasks
  return tasks.make("classify", dataset="digits", **params)


def _adding_sample(batch_size):
  from lstmx import tasks
  return tasks.make("adding", length=10).sample(jax.random.key(0), batch_size)


def _cell_call(carry, x_t):
  cell = lstmx.nn.LSTMCell(3, 4, rngs=nnx.Rngs(0))
  return cell(carry, x_t)


def _load_digits(**kwargs):
  from lstmx import data
  return data.load("digits", **kwargs)


def _forecast(**params):
  from lstmx import tasks
  return tasks.make("forecast", **params)


H0 = (jnp.zeros((2, 4)), jnp.zeros((2, 4)))
BF16 = lstmx.init_lstm(jax.random.key(0), 3, 4, dtype=jnp.bfloat16)

ISSUE_30_CASES = {
    "to_torch_empty": (lambda: lstmx.to_torch(()), ValueError,
                       r"params: expected a non-empty tuple of layers.*; got no layers"),
    "lstm_rngs_key": (lambda: lstmx.nn.LSTM(3, 4, rngs=jax.random.key(0)), TypeError,
                      r"rngs: expected an nnx.Rngs .*; got PRNGKeyArray"),
    "lstm_rngs_none": (lambda: lstmx.nn.LSTM(3, 4, rngs=None), TypeError,
                       r"rngs: expected an nnx.Rngs .*; got NoneType"),
    "cell_rngs_key": (lambda: lstmx.nn.LSTMCell(3, 4, rngs=jax.random.key(0)), TypeError,
                      r"rngs: expected an nnx.Rngs .*; got PRNGKeyArray"),
    "cell_input_width": (lambda: _cell_call(H0, jnp.ones((2, 5))), ValueError,
                         r"x_t: expected shape \[B, 3\] \(B, in_features\); got \(2, 5\)"),
    "cell_carry_size": (lambda: _cell_call((jnp.zeros((2, 5)), jnp.zeros((2, 5))),
                                           jnp.ones((2, 3))), ValueError,
                        r"carry h: expected shape \(2, 4\) .*; got \(2, 5\)"),
    "cell_carry_batch": (lambda: _cell_call((jnp.zeros((2, 4)), jnp.zeros((3, 4))),
                                            jnp.ones((2, 3))), ValueError,
                         r"carry c: expected shape \(2, 4\) .*; got \(3, 4\)"),
    "cell_carry_not_pair": (lambda: _cell_call(jnp.zeros((2, 4)), jnp.ones((2, 3))),
                            ValueError, r"carry: expected a pair \(h, c\) of \[B, 4\] arrays"),
    "cell_rank3_input": (lambda: _cell_call(H0, jnp.ones((2, 7, 3))), ValueError,
                         r"x_t: expected shape \[B, 3\] .*; got \(2, 7, 3\)"),
    "label_noise_str": (lambda: _digits_task(label_noise="0.1"), ValueError,
                        r"classify.label_noise: expected a fraction in \[0, 1\); got '0.1'"),
    "train_size_zero": (lambda: _digits_task(train_size=0), ValueError,
                        r"classify.train_size: expected an int >= 1; got 0"),
    "train_size_too_big": (lambda: _digits_task(train_size=10**6).sample(jax.random.key(0), 2),
                           ValueError, r"classify.train_size: expected an int in \[1, \d+\] "
                           r"\(the 'digits' training split's size\); got 1000000"),
    "forecast_non_series": (lambda: _forecast(dataset="digits"), ValueError,
                            r"forecast.dataset: expected a forecasting dataset, one of "
                            r"\(.*'sunspots'.*\); got 'digits' \(a classification dataset\)"),
    "sample_negative": (lambda: _adding_sample(-1), ValueError,
                        r"batch_size: expected an int >= 1; got -1"),
    "sample_fraction": (lambda: _adding_sample(2.5), ValueError,
                        r"batch_size: expected an int >= 1; got 2.5"),
    "load_negative_seed": (lambda: _load_digits(seed=-1), ValueError,
                           r"seed: expected an int >= 0; got seed=-1"),
    "lstm_bogus_backend": (lambda: lstmx.nn.LSTM(3, 4, backend="bogus", rngs=nnx.Rngs(0)),
                           ValueError, r"backend: expected one of \('auto', 'scan'.*\); "
                           r"got 'bogus'"),
    "lstm_unroll_zero": (lambda: lstmx.nn.LSTM(3, 4, unroll=0, rngs=nnx.Rngs(0)), ValueError,
                         r"unroll: expected a positive int; got 0"),
    "lstm_remat_zero": (lambda: lstmx.nn.LSTM(3, 4, remat_every=0, rngs=nnx.Rngs(0)),
                        ValueError, r"remat_every must be None or a positive int; got 0"),
}


@pytest.mark.parametrize("case", sorted(ISSUE_30_CASES))
def test_error_names_its_argument(case):
  """Issue 30: each raised an error naming nothing (an AttributeError, a dot_general or
  broadcasting error, a JAX shape error, a `<=` TypeError, 'n', 'options') or, for
  `to_torch(())`, returned {}; modules refused bad settings only at their first call."""
  call, exc, pattern = ISSUE_30_CASES[case]
  with pytest.raises(exc, match=pattern) as e:
    call()
  assert "\n" not in str(e.value)


def test_to_torch_of_bfloat16_params_gives_bfloat16_tensors():
  torch = pytest.importorskip("torch")
  sd = lstmx.to_torch(BF16)
  assert all(v.dtype == torch.bfloat16 for v in sd.values())
  back = lstmx.from_torch(sd)
  assert back[0][0].w_ih.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(back[0][0].w_ih, np.float32),
                                np.asarray(BF16[0][0].w_ih, np.float32))
  assert lstmx.to_torch(BF16, as_tensors=False)["weight_hh_l0"].dtype == jnp.bfloat16


SCALARS = [float, np.float32, np.float64, jnp.float32, jnp.bfloat16,
           lambda v: np.asarray(v, np.float32)]  # the same rate as every kind of scalar


@pytest.mark.parametrize("make", SCALARS, ids=["float", "np32", "np64", "jnp32", "jnpbf16",
                                               "np0d"])
def test_scalar_rates_accepted_everywhere_alike(make):
  """Issue 30: `Regularization(input_dropout=jnp.float32(0.1))` was refused while
  NumPy scalars were accepted. Every kind of scalar gives the same rate, everywhere."""
  from lstmx.models import checks
  reg = lstmx.Regularization(input_dropout=make(0.5), zoneout_c=make(1.0), ar=make(2.0))
  assert (reg.input_dropout, reg.zoneout_c, reg.ar) == (0.5, 1.0, 2.0)
  assert type(reg.input_dropout) is float
  assert checks.as_float("rate", make(0.5), low=0.0) == 0.5
  task = _digits_task(label_noise=make(0.5), train_size=np.int64(50))
  assert (task.label_noise, task.train_size) == (0.5, 50) and hash(task)
  with pytest.raises(ValueError, match=r"Regularization.input_dropout: expected a rate"):
    lstmx.Regularization(input_dropout=make(1.0))
  with pytest.raises(ValueError, match=r"classify.label_noise: expected a fraction"):
    _digits_task(label_noise=make(1.0))


@pytest.mark.parametrize("value", [jnp.bool_(True), np.bool_(True), True, jnp.ones((1,))])
def test_bools_and_arrays_are_not_rates(value):
  with pytest.raises(ValueError, match=r"Regularization.input_dropout: expected a rate"):
    lstmx.Regularization(input_dropout=value)


def test_traced_rate_refused_by_name():
  """A traced value's number is unknown: refused, naming the argument, not a tracer error."""
  def build(rate):
    return lstmx.Regularization(input_dropout=rate).input_dropout
  with pytest.raises(ValueError, match=r"Regularization.input_dropout: expected a rate"):
    jax.jit(build)(0.1)
