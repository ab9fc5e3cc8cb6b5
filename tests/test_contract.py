"""The contract every backend meets: outputs, final state and gradients equal the
reference's in float64, over shapes, lengths, masking, reverse, stacking, unroll and
the in-kernel regularizers (recurrent dropout, zoneout).

The suite runs every backend in the registry (`lstmx.kernels.BACKENDS`): a new
backend joins by registering. Each runs in its setting (`running`): pallas in
interpret mode on CPU (float64 works there; each distinct layer shape costs a
second or two of compilation, so it gets fewer random examples and a subset of
the lengths), hidden_parallel under a mesh of the 8 fake CPU devices with a
``model`` axis, cudnn with ``jax.experimental.rnn.lstm_ref`` in place of the
cuDNN call and the platform reported as CUDA. A backend with limits gets the
cases its `unsupported` accepts; scan also runs in its memory mode (remat_every).
"""

import contextlib
import dataclasses

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn
from jax.sharding import Mesh

import lstmx
from lstmx.kernels import BACKENDS, KernelOptions, LayerMasks, dispatch
from helpers import assert_trees_close, random_problem, value_and_grads


@dataclasses.dataclass(frozen=True)
class Variant:
  backend: str
  kw: tuple = ()  # extra keyword arguments of lstmx.lstm, e.g. (("remat_every", 4),)

  @property
  def id(self) -> str:
    return self.backend + "".join(f"-{k}{v}" for k, v in self.kw)


def _variants() -> list[Variant]:
  out = []
  for name in BACKENDS.names():
    out.append(Variant(name))
    # Memory modes, for the backends that take them (asked, not listed); the
    # oracle accepts remat_every only to ignore it.
    takes_remat = BACKENDS.get(name).unsupported(KernelOptions(remat_every=4), LayerMasks())
    if takes_remat is None and name != "reference":
      out.append(Variant(name, (("remat_every", 4),)))
  return out


VARIANTS = _variants()
IDS = [v.id for v in VARIANTS]
# The Newton backends compile while loops of associative scans per shape: fewer cases.
NEWTON = ("deer", "block_deer", "quasi_deer")
# Each example compiles its shapes twice (the variant, the reference): ~15 s on a CI core.
EXAMPLES = {"pallas": 3, "pallas_gpu": 3, "hidden_parallel": 3, "reference": 2,
            **{name: 3 for name in NEWTON}}  # default 6
SHORT = [(1, False), (129, True)]
LENGTHS = {"scan": [(T, bd) for T in (1, 7, 129, 300) for bd in (False, True)]}  # (T, bidir)
TOL = dict(rtol=1e-9, atol=1e-10)


def _lstm_via_ref(x, h0, c0, w, lengths, D, H, L, dropout, bidirectional, precision=None):
  """``rnn.lstm``'s signature, computed by ``rnn.lstm_ref`` (differentiable on CPU)."""
  del precision
  return rnn.lstm_ref(x, h0, c0, *rnn.unpack_lstm_weights(w, D, H, L, bidirectional),
                      lengths, D, H, L, dropout, bidirectional)


def _mesh(B: int, H: int) -> Mesh:
  """A ``data`` x ``model`` mesh of fake CPU devices that divides B and H."""
  model = next(m for m in (4, 2, 1) if H % m == 0)
  data = 2 if B % 2 == 0 else 1
  return Mesh(np.array(jax.devices()[:data * model]).reshape(data, model), ("data", "model"))


@contextlib.contextmanager
def running(backend: str, B: int = 4, H: int = 8):
  """The setting `backend` runs in on this CPU (a no-op for most)."""
  if backend == "hidden_parallel":
    if jax.device_count() < 8:
      pytest.skip("needs 8 (fake) CPU devices")
    with jax.set_mesh(_mesh(B, H)):
      yield
  elif backend == "cudnn":
    cudnn = BACKENDS.get("cudnn")
    module = __import__(cudnn.layer_fn.__module__, fromlist=["_cudnn_lstm"])
    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(module, "_cudnn_lstm", _lstm_via_ref)
      mp.setattr(dispatch, "current_platform", lambda: "cuda")
      yield
  else:
    yield


def skip_unless_supported(variant: Variant, *, dtype, regularization=None, **kw):
  """Skips the case if the backend's `unsupported` rejects it (asked in its setting)."""
  kw = dict(variant.kw, **kw)
  options = KernelOptions(unroll=kw.get("unroll", 1), compute_dtype=kw.get("compute_dtype"),
                          precision=kw.get("precision"), remat_every=kw.get("remat_every"))
  in_kernel = regularization is not None and regularization.reaches_kernel
  masks = LayerMasks(recurrent=jnp.ones(())) if in_kernel else LayerMasks()
  with running(variant.backend):
    why = BACKENDS.get(variant.backend).unsupported(options, masks, dtype=jnp.dtype(dtype),
                                                    platform=dispatch.current_platform())
  if why:
    pytest.skip(f"backend={variant.backend!r} {why}")


_REFERENCE: dict = {}  # the reference's values and gradients per problem, shared by variants


def _frozen(value):
  """`value` as a hashable key: arrays (PRNG keys included) by dtype, shape and bytes."""
  if isinstance(value, (jax.Array, np.ndarray)):
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
      value = jax.random.key_data(value)
    a = np.asarray(value)
    return (a.dtype.str, a.shape, a.tobytes())
  leaves, tree = jax.tree.flatten(value)
  if len(leaves) == 1 and leaves[0] is value:
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)
  return (str(tree), tuple(_frozen(leaf) for leaf in leaves))


def reference(problem, **kw):
  """`value_and_grads` of the reference backend, computed once per problem and options in
  this process (every variant of a case compares against the same numbers)."""
  key = (_frozen(problem), tuple((k, _frozen(v)) for k, v in sorted(kw.items())),
         str(jax.config.jax_default_matmul_precision), jax.config.jax_enable_x64)
  if key not in _REFERENCE:
    _REFERENCE[key] = value_and_grads(*problem, "reference", **kw)
  return _REFERENCE[key]


def compare(variant: Variant, problem, tol, **kw):
  """The variant's values and gradients against the reference's, in its setting."""
  params, x, _, _ = problem
  B, H = x.shape[0], params[0][0].w_hh.shape[0]
  ref = reference(problem, **kw)
  with running(variant.backend, B, H):
    got = value_and_grads(*problem, variant.backend, **dict(variant.kw, **kw))
  assert_trees_close(got, ref, **tol)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_matches_reference_random_shapes(variant):
  skip_unless_supported(variant, dtype=jnp.float64)

  @hypothesis.settings(max_examples=EXAMPLES.get(variant.backend, 6), deadline=None,
                       derandomize=True, database=None)
  @hypothesis.given(
      B=st.integers(1, 5), T=st.integers(1, 40), D=st.integers(1, 9), H=st.integers(1, 12),
      num_layers=st.integers(1, 3), bidirectional=st.booleans(), masked=st.booleans(),
      with_state=st.booleans(), unroll=st.sampled_from([1, 2, 3, 8]))
  def check(B, T, D, H, num_layers, bidirectional, masked, with_state, unroll):
    with jax.enable_x64(True):
      problem = random_problem(B * 1000 + T, B, T, D, H, num_layers=num_layers,
                               bidirectional=bidirectional, masked=masked,
                               with_state=with_state)
      compare(variant, problem, TOL, unroll=unroll)
  check()


@pytest.mark.parametrize("variant,T,bidirectional",
                         [pytest.param(v, T, bd, id=f"{v.id}-{T}-{bd}") for v in VARIANTS
                          for T, bd in LENGTHS.get(v.backend, SHORT)])
def test_matches_reference_lengths(x64, variant, T, bidirectional):
  skip_unless_supported(variant, dtype=jnp.float64, unroll=4)
  problem = random_problem(T, 4, T, 4, 6, num_layers=2, bidirectional=bidirectional,
                           masked=True)
  compare(variant, problem, TOL, unroll=4)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_matches_reference_float32_highest_precision(variant):
  skip_unless_supported(variant, dtype=jnp.float32)
  problem = random_problem(3, 4, 33, 5, 16, num_layers=2, bidirectional=True, masked=True,
                           dtype=jnp.float32)
  with jax.default_matmul_precision("highest"):
    compare(variant, problem, dict(rtol=2e-5, atol=2e-5))


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_padded_outputs_exactly_zero(x64, variant):
  skip_unless_supported(variant, dtype=jnp.float64)
  params, x, _, _ = random_problem(0, 3, 9, 4, 6, bidirectional=True)
  lens = jnp.array([9, 3, 1])
  with running(variant.backend, 3, 6):
    y, _ = lstmx.lstm(params, x, seq_lengths=lens, backend=variant.backend, **dict(variant.kw))
  for b, n in enumerate([9, 3, 1]):
    assert np.all(np.asarray(y[b, n:]) == 0.0)
    assert np.all(np.asarray(y[b, :n]) != 0.0)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_padding_never_matters(x64, variant):
  """NaN, inf or -inf (one per batch row) in padded steps of x reach neither the outputs
  nor any gradient (w.r.t. params, x and the initial state): all equal the clean-padding
  results and are finite.
  Padding is masked before the input projection: masking after it is too late, as
  dW_ih = X^T dZ multiplies the garbage by its zero cotangent. In float64, or float32
  for a backend that runs only that (cudnn)."""
  with running(variant.backend):
    f64 = BACKENDS.get(variant.backend).unsupported(
        KernelOptions(**dict(variant.kw)), LayerMasks(), dtype=jnp.dtype(jnp.float64),
        platform=dispatch.current_platform()) is None
  dtype = jnp.float64 if f64 else jnp.float32
  skip_unless_supported(variant, dtype=dtype)
  params, x, _, state = random_problem(11, 4, 9, 4, 4, num_layers=2, bidirectional=True,
                                       dtype=dtype)
  lens = jnp.array([9, 4, 1, 6], jnp.int32)
  valid = np.arange(9)[None, :] < np.asarray(lens)[:, None]  # [B, T]
  garbage = np.array([0.0, np.nan, np.inf, -np.inf])[:, None, None]  # row 0 has no padding
  dirty = jnp.where(jnp.asarray(valid)[:, :, None], x, jnp.asarray(garbage, x.dtype))
  with running(variant.backend, 4, 4):
    clean_out = value_and_grads(params, x, lens, state, variant.backend, **dict(variant.kw))
    dirty_out = value_and_grads(params, dirty, lens, state, variant.backend,
                                **dict(variant.kw))
  for leaf in jax.tree.leaves(dirty_out):
    assert np.all(np.isfinite(np.asarray(leaf)))
  assert_trees_close(dirty_out, clean_out, **TOL)
  (_, (_, dx, _)) = dirty_out
  assert np.all(np.asarray(dx)[~valid] == 0.0)  # the padding gets no gradient


REGULARIZERS = {
    "recurrent": lstmx.Regularization(recurrent_dropout=0.3),
    "zoneout": lstmx.Regularization(zoneout_h=0.2, zoneout_c=0.3),
    "all": lstmx.Regularization(recurrent_dropout=0.3, weight_drop=0.2, zoneout_h=0.2,
                                zoneout_c=0.3),
}


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
@pytest.mark.parametrize("regularizer", sorted(REGULARIZERS))
@pytest.mark.parametrize("deterministic", [False, True])
def test_regularized_matches_reference(x64, variant, regularizer, deterministic):
  """Recurrent dropout and zoneout go inside the kernel (and its backward)."""
  reg = REGULARIZERS[regularizer]
  if variant.backend in NEWTON and regularizer != "all":
    pytest.skip("the Newton backends run the combined case only (compile time)")
  skip_unless_supported(variant, dtype=jnp.float64, regularization=reg)
  problem = random_problem(5, 4, 9, 3, 4, bidirectional=True, masked=True)
  compare(variant, problem, TOL, regularization=reg, key=jax.random.key(3),
          deterministic=deterministic)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_layer_shapes(variant):
  """The typed contract: ys [T, B, H], h_n and c_n [B, H], in the state dtype."""
  T, B, D, H = 5, 4, 3, 8
  skip_unless_supported(variant, dtype=jnp.float32)
  params = lstmx.init_lstm(jax.random.key(0), D, H)[0][0]
  xs, h0 = jnp.ones((T, B, D)), jnp.zeros((B, H))
  options = KernelOptions(**dict(variant.kw))
  with running(variant.backend, B, H):
    ys, (h, c) = BACKENDS.get(variant.backend).layer(params, xs, None, h0, h0, LayerMasks(),
                                                      options)
  assert ys.shape == (T, B, H) and h.shape == c.shape == (B, H)
  assert ys.dtype == h.dtype == c.dtype == jnp.float32


def test_auto_resolves_to_a_tested_backend():
  assert lstmx.backends.resolve("auto").value in BACKENDS.names()
