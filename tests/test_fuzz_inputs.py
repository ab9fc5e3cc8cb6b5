"""Property-based fuzzing of `lstmx.lstm`'s inputs (issue 18, Deliver 6).

Each argument is drawn from a mix of valid forms (numpy scalars, lists, any integer
dtype of `seq_lengths`, garbage in the padding, ...) and invalid ones (wrong shapes,
dtypes, types, ranges). Every call either gives the reference backend's result (the
scan backend against the reference on a clean, canonical form of the same inputs, in
float64) or raises ValueError / TypeError: one line that starts with the name of one of the
invalid arguments. Small shapes and a few dozen derandomized examples keep it fast.
"""

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

ARGS = ("params", "x", "seq_lengths", "initial_state", "time_major", "unroll", "remat_every",
        "compute_dtype", "deterministic", "return_penalties")
INT_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64"]


@st.composite
def cases(draw):
  """(kwargs of the call under test, kwargs of the reference call or None, bad names)."""
  B, T, D, H = (draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 3)),
                draw(st.integers(1, 3)))
  L, bidir = draw(st.integers(1, 2)), draw(st.booleans())
  dirs = 2 if bidir else 1
  rng = np.random.default_rng(draw(st.integers(0, 2**16)))
  with jax.enable_x64(True):  # the strategy runs outside the test's x64 context
    params = lstmx.init_lstm(jax.random.key(int(rng.integers(1000))), D, H, num_layers=L,
                             bidirectional=bidir, init="torch", dtype=jnp.float64)
  bad = []
  # Half the cases are all valid; the others break one or two arguments.
  broken = draw(st.one_of(st.just(frozenset()),
                          st.frozensets(st.sampled_from(ARGS), min_size=1, max_size=2)))

  def pick(name, good, wrong):
    return draw(st.sampled_from(wrong if name in broken else good))

  # params
  kind = pick("params", ["stack", "lists", "single"], ["layer", "int", "bias", "dict"])
  ref_params = params
  if kind == "stack":
    got_params = params
  elif kind == "lists":
    got_params = [list(layer) for layer in params]
  elif kind == "single":
    got_params = params[0][0]
    ref_params = ((params[0][0],),)
    L, dirs = 1, 1
  elif kind == "layer":
    got_params, _ = params[0], bad.append("params")
  elif kind == "int":
    got_params, _ = jax.tree.map(lambda a: a.astype(jnp.int32), params), bad.append("params")
  elif kind == "bias":
    p = params[0][0]
    got_params = ((lstmx.LSTMParams(p.w_ih, p.w_hh, p.b[:-1]),) + params[0][1:],) + params[1:]
    bad.append("params")
  else:
    got_params, _ = {"w_ih": params[0][0].w_ih}, bad.append("params")

  # x, seq_lengths, time_major
  x = rng.standard_normal((B, T, D))
  time_major = pick("time_major", [False, True], ["yes"])
  if time_major == "yes":
    bad.append("time_major")
  lens_kind = pick("seq_lengths", ["none", "ok", "ok", "list"],
                   ["float", "bool", "zero", "long", "shape"])
  lens = np.asarray(rng.integers(1, T + 1, size=B))
  ref_lens = None
  if lens_kind == "none":
    got_lens = None
  elif lens_kind == "ok":
    got_lens = lens.astype(draw(st.sampled_from(INT_DTYPES)))
    got_lens = draw(st.sampled_from([got_lens, jnp.asarray(got_lens)]))
    ref_lens = lens.astype(np.int32)
  elif lens_kind == "list":
    got_lens, ref_lens = [int(v) for v in lens], lens.astype(np.int32)
  else:
    bad.append("seq_lengths")
    got_lens = {"float": lens.astype(np.float32), "bool": lens > 0,
                "zero": np.zeros(B, np.int32), "long": lens + T,
                "shape": np.ones(B + 1, np.int32)}[lens_kind]
  x_kind = pick("x", ["ok", "list", "garbage", "garbage"], ["int", "rank2", "wrong_d", "str"])
  got_x = x
  if x_kind == "list":
    got_x = x.tolist()
  elif x_kind == "garbage" and ref_lens is not None:  # NaN / inf in the padding only
    valid = np.arange(T)[None, :] < ref_lens[:, None]
    got_x = np.where(valid[:, :, None], x, rng.choice([np.nan, np.inf, -np.inf]))
  elif x_kind in ("int", "rank2", "wrong_d", "str"):
    bad.append("x")
    got_x = {"int": x.astype(np.int32), "rank2": x[0], "wrong_d": np.ones((B, T, D + 1)),
             "str": "x"}[x_kind]
  if time_major is True and x_kind not in ("rank2", "str"):
    got_x = np.swapaxes(np.asarray(got_x), 0, 1)

  # initial_state
  n = L * dirs
  state = tuple(rng.standard_normal((n, B, H)) for _ in range(2))
  state_kind = pick("initial_state", ["none", "ok", "list"], ["shape", "int", "single"])
  ref_state = state if state_kind in ("ok", "list") else None
  got_state = {"none": None, "ok": state, "list": [s.tolist() for s in state],
               "shape": (state[0][:, :, :0], state[1]), "int": (state[0].astype(np.int32),
                                                                 state[1]),
               "single": state[0]}[state_kind]
  if state_kind in ("shape", "int", "single"):
    bad.append("initial_state")

  # scalars and flags
  kw = {}
  for name, good, wrong in (
      ("unroll", [1, 2, 3, np.int64(2), np.int32(4)], [0, -1, True, 2.0, "2"]),
      ("remat_every", [None, 2, np.int64(3)], [0, -2, 1.5]),
      ("compute_dtype", [None, jnp.float64, "float64"], [jnp.int8, jnp.bool_, "bogus"]),
      ("deterministic", [None, True, False, np.bool_(True)], ["False", 1]),
      ("return_penalties", [False, True], ["no"])):
    kw[name] = pick(name, good, wrong)
    if name in broken:
      bad.append(name)

  got = dict(params=got_params, x=got_x, seq_lengths=got_lens, initial_state=got_state,
             time_major=time_major, backend="scan", **kw)
  ref = dict(params=ref_params, x=x, seq_lengths=ref_lens, initial_state=ref_state,
             backend="reference", unroll=1,
             compute_dtype=None if kw["compute_dtype"] is None else jnp.float64,
             return_penalties=kw["return_penalties"])
  return got, ref, bad


@hypothesis.settings(max_examples=40, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(case=cases())
def test_lstm_inputs_give_the_reference_result_or_a_clear_error(case):
  got_kw, ref_kw, bad = case
  hypothesis.event("refused" if bad else "valid")
  with jax.enable_x64(True):
    if bad:
      with pytest.raises((ValueError, TypeError)) as info:
        lstmx.lstm(**got_kw)
      message = str(info.value)
      assert "\n" not in message, message
      assert any(message.startswith(name) for name in bad), (bad, message)
      return
    out = lstmx.lstm(**got_kw)
    want = lstmx.lstm(**ref_kw)
  if got_kw["time_major"]:
    out = (jnp.swapaxes(out[0], 0, 1),) + tuple(out[1:])
  for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(want)):
    assert a.dtype == b.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-10)
