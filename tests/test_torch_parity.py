"""Parity with torch.nn.LSTM (weights imported with `lstmx.from_torch`), forward and
backward, stacked, bidirectional, packed variable-length batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

torch = pytest.importorskip("torch")


def _torch_run(module, x, lens, state):
  xt = torch.tensor(x, requires_grad=True)
  h0, c0 = (torch.tensor(s, requires_grad=True) for s in state)
  packed = torch.nn.utils.rnn.pack_padded_sequence(
      xt, torch.tensor(lens), batch_first=True, enforce_sorted=False)
  out, (h, c) = module(packed, (h0, c0))
  y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                total_length=x.shape[1])
  return xt, h0, c0, y, h, c


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, False),
                                                      (1, True)])
def test_forward_and_backward_match_torch(dtype, num_layers, bidirectional):
  tdtype = getattr(torch, dtype)
  torch.manual_seed(num_layers)
  B, T, D, H = 4, 13, 5, 8
  module = torch.nn.LSTM(D, H, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=True).to(tdtype)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((B, T, D)).astype(dtype)
  lens = [13, 5, 1, 9]
  n = num_layers * (2 if bidirectional else 1)
  state = [rng.standard_normal((n, B, H)).astype(dtype) for _ in range(2)]
  wy = rng.standard_normal((B, T, H * (2 if bidirectional else 1))).astype(dtype)
  wh = rng.standard_normal((n, B, H)).astype(dtype)

  xt, h0t, c0t, y, h, c = _torch_run(module, x, lens, state)
  (torch.sum(torch.tensor(wy) * y) + torch.sum(torch.tensor(wh) * (h + 2 * c))).backward()

  with jax.enable_x64(dtype == "float64"):
    params = lstmx.from_torch(module)
    prec = "highest" if dtype == "float32" else None

    def loss(params, x, h0, c0):
      yj, (hj, cj) = lstmx.lstm(params, x, seq_lengths=jnp.array(lens),
                                initial_state=(h0, c0), precision=prec)
      return jnp.sum(jnp.asarray(wy) * yj) + jnp.sum(jnp.asarray(wh) * (hj + 2 * cj)), (yj, hj, cj)

    (_, (yj, hj, cj)), grads = jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True)(
        params, jnp.asarray(x), jnp.asarray(state[0]), jnp.asarray(state[1]))
    assert yj.dtype == jnp.dtype(dtype)

  tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=2e-6)
  for got, want in ((yj, y), (hj, h), (cj, c)):
    np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), **tol)
  gparams, gx, gh0, gc0 = grads
  np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), **tol)
  np.testing.assert_allclose(np.asarray(gh0), h0t.grad.numpy(), **tol)
  np.testing.assert_allclose(np.asarray(gc0), c0t.grad.numpy(), **tol)
  for l in range(num_layers):
    for d in range(2 if bidirectional else 1):
      sfx = f"_l{l}" + ("_reverse" if d else "")
      g = gparams[l][d]
      np.testing.assert_allclose(np.asarray(g.w_ih).T, getattr(module, "weight_ih" + sfx).grad.numpy(), **tol)
      np.testing.assert_allclose(np.asarray(g.w_hh).T, getattr(module, "weight_hh" + sfx).grad.numpy(), **tol)
      # b = bias_ih + bias_hh, so dL/db equals each of their gradients.
      np.testing.assert_allclose(np.asarray(g.b), getattr(module, "bias_ih" + sfx).grad.numpy(), **tol)


def test_to_torch_round_trip_and_outputs():
  params = lstmx.init_lstm(jax.random.key(1), 3, 6, num_layers=2, bidirectional=True)
  module = torch.nn.LSTM(3, 6, num_layers=2, bidirectional=True, batch_first=True)
  module.load_state_dict(lstmx.to_torch(params))
  back = lstmx.from_torch(module.state_dict())
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               params, back)
  x = np.random.default_rng(0).standard_normal((2, 7, 3)).astype("float32")
  with torch.no_grad():
    y, _ = module(torch.tensor(x))
  with jax.default_matmul_precision("highest"):
    yj, _ = lstmx.lstm(params, jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(yj), y.numpy(), rtol=1e-5, atol=1e-6)


def test_from_torch_rejects_projection():
  with pytest.raises(ValueError, match="proj_size"):
    lstmx.from_torch(torch.nn.LSTM(3, 6, proj_size=2))


def test_from_torch_bfloat16_module():
  """A bf16 module once failed in ``.numpy()`` ("unsupported ScalarType BFloat16")."""
  module = torch.nn.LSTM(3, 4, num_layers=2).to(torch.bfloat16)
  params = lstmx.from_torch(module)
  assert params[1][0].w_hh.dtype == jnp.bfloat16
  want = module.weight_hh_l1.detach().float().numpy().T
  np.testing.assert_array_equal(np.asarray(params[1][0].w_hh, np.float32), want)
  b = (module.bias_ih_l0 + module.bias_hh_l0).detach().float().numpy()
  np.testing.assert_array_equal(np.asarray(params[0][0].b, np.float32), b)
  assert lstmx.from_torch(module, dtype=jnp.float32)[0][0].w_ih.dtype == jnp.float32


@pytest.mark.parametrize("cls", ["GRU", "RNN"])
def test_from_torch_refuses_other_rnns(cls):
  """An nn.GRU was once accepted (and failed later in lstmx.lstm)."""
  module = getattr(torch.nn, cls)(3, 4)
  with pytest.raises(ValueError, match=rf"^from_torch: expected a torch.nn.LSTM or its state "
                                       rf"dict; got a {cls} \(mode="):
    lstmx.from_torch(module)
  with pytest.raises(ValueError, match=r"^from_torch: weight_hh_l0: expected shape \(4H, H\) "
                                       r"of an LSTM; got \((12|4), 4\)"):
    lstmx.from_torch(module.state_dict())


def test_from_torch_wrong_bias_length():
  """A wrong bias length once failed with a numpy broadcasting message."""
  state = torch.nn.LSTM(3, 4).state_dict()
  state["bias_ih_l0"] = torch.zeros(12)
  with pytest.raises(ValueError, match=r"^from_torch: bias_ih_l0: expected shape \(16,\); "
                                       r"got \(12,\)$"):
    lstmx.from_torch(state)
  state = torch.nn.LSTM(3, 4).state_dict()
  state["weight_ih_l0"] = torch.zeros(12, 3)
  with pytest.raises(ValueError, match=r"^from_torch: weight_ih_l0: expected shape \(16, D\)"):
    lstmx.from_torch(state)
  with pytest.raises(TypeError, match=r"^from_torch: expected a torch.nn.LSTM or its state "
                                      r"dict; got list$"):
    lstmx.from_torch([1, 2])
