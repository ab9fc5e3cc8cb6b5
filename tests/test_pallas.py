"""Pallas-specific checks beyond the contract suite: batch tiling (with a padded last
tile), the interpret default, and that the time loop runs inside one kernel call; for
the streaming kernels (`lstmx.kernels.pallas_gpu`) the head-wise option, the compiled
modes' padded layout and their option errors. Lowering for GPU/TPU: test_lowering.py."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

import lstmx
from lstmx.kernels import pallas_gpu
from lstmx.kernels.pallas import PallasBlocks, lstm_layer_pallas
from helpers import assert_trees_close


def _layer_problem(B=5, T=6, D=3, H=4, dtype=jnp.float64):
  keys = jax.random.split(jax.random.key(0), 5)
  p = lstmx.init_lstm(keys[0], D, H, init="torch", dtype=dtype)[0][0]
  xs = jax.random.normal(keys[1], (T, B, D), dtype)
  h0, c0 = (0.5 * jax.random.normal(k, (B, H), dtype) for k in keys[2:4])
  lens = jax.random.randint(keys[4], (B,), 1, T + 1)
  return p, xs, jnp.arange(T)[:, None] < lens[None, :], h0, c0


def _loss(layer, **kw):
  def f(p, xs, mask, h0, c0):
    ys, (h, c) = layer(p, xs, mask, h0, c0, **kw)
    return jnp.sum(jnp.sin(ys)) + jnp.sum(h * c) + jnp.sum(jnp.cos(c))
  return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 3, 4)))


@pytest.mark.parametrize("reverse", [False, True])
def test_batch_tiles_with_padding_match_reference(x64, reverse):
  problem = _layer_problem()
  ref = _loss(lstmx.lstm_layer_reference, reverse=reverse)(*problem)
  got = _loss(lstm_layer_pallas, reverse=reverse, blocks=PallasBlocks(block_b=2))(*problem)
  assert_trees_close(got, ref, rtol=1e-9, atol=1e-10)


def test_one_kernel_call_per_direction_of_the_pass(x64):
  """Forward and backward are each one pallas_call (the time loop is inside it); with
  ``interpret=None`` each is traced twice, once per platform branch."""
  p, xs, mask, h0, c0 = _layer_problem()
  jaxpr = str(jax.make_jaxpr(_loss(lstm_layer_pallas, interpret=True))(p, xs, mask, h0, c0))
  assert jaxpr.count("pallas_call") == 2
  jaxpr = str(jax.make_jaxpr(_loss(lstm_layer_pallas))(p, xs, mask, h0, c0))
  assert jaxpr.count("pallas_call") == 4


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks the CPU default")
def test_interpret_defaults_to_true_on_cpu():
  """Without interpret mode a pallas_call cannot lower on CPU; the default must pick it."""
  problem = _layer_problem(B=2, T=3, dtype=jnp.float32)
  with jax.default_matmul_precision("highest"):
    got = lstm_layer_pallas(*problem)
    ref = lstmx.lstm_layer_reference(*problem)
  assert_trees_close(got, ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- pallas_gpu


def _masked_reference_grads(grads, H, heads):
  """The reference's gradients with dW_hh restricted to the diagonal head blocks."""
  p, *rest = grads
  bd = pallas_gpu.block_diagonal_mask(H, heads, p.w_hh.dtype)
  return (dataclasses.replace(p, w_hh=p.w_hh * bd), *rest)


@pytest.mark.parametrize("reverse", [False, True])
def test_gpu_heads_match_block_diagonal_reference(x64, reverse):
  """heads=2: equal to the dense LSTM whose w_hh is the block-diagonal part; dW_hh is
  exactly zero off the blocks (the gradient of the function computed)."""
  p, *rest = _layer_problem(H=8)
  H, heads = 8, 2
  blocks = pallas_gpu.GPUBlocks(block_b=2, heads=heads)
  got_v, got_g = _loss(pallas_gpu.lstm_layer_pallas_gpu, reverse=reverse, blocks=blocks)(
      p, *rest)
  bd = pallas_gpu.block_diagonal_mask(H, heads, p.w_hh.dtype)
  p_bd = dataclasses.replace(p, w_hh=p.w_hh * bd)
  ref_v, ref_g = _loss(lstmx.lstm_layer_reference, reverse=reverse)(p_bd, *rest)
  assert_trees_close((got_v, got_g), (ref_v, _masked_reference_grads(ref_g, H, heads)),
                     rtol=1e-9, atol=1e-10)
  # The off-diagonal entries of w_hh are never read.
  noisy = dataclasses.replace(p, w_hh=p.w_hh + 5.0 * (1 - bd))
  assert_trees_close(_loss(pallas_gpu.lstm_layer_pallas_gpu, reverse=reverse,
                           blocks=blocks)(noisy, *rest)[0], got_v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("heads", [1, 2])
def test_gpu_compiled_padding_matches_reference(x64, heads):
  """The compiled modes' layout (batch padded to 16 rows, each head to 16 units), run in
  interpret mode: padded units and rows stay out of every value and gradient."""
  from lstmx.kernels.contract import KernelOptions, LayerMasks
  from lstmx.kernels.pallas_gpu_kernels import Static
  problem = _layer_problem(B=5, T=6, D=3, H=6)
  H = 6

  def padded(p, xs, mask, h0, c0):
    regs = LayerMasks().for_kernel(xs.shape[0], xs.shape[1], H, h0.dtype)
    static = Static(KernelOptions(), interpret=True, block_b=4, heads=heads, pad=True)
    return pallas_gpu._run(static, p, xs, mask, h0, c0, regs)

  p, *rest = problem
  bd = pallas_gpu.block_diagonal_mask(H, heads, p.w_hh.dtype)
  p = dataclasses.replace(p, w_hh=p.w_hh * bd)
  got_v, got_g = _loss(padded)(p, *rest)
  ref_v, ref_g = _loss(lstmx.lstm_layer_reference)(p, *rest)
  assert_trees_close((got_v, got_g), (ref_v, _masked_reference_grads(ref_g, H, heads)),
                     rtol=1e-9, atol=1e-10)


def test_gpu_through_lstmx_lstm_with_a_backend_object(x64):
  """`pallas_gpu.backend(...)` objects go through ``lstmx.lstm(..., backend=...)``."""
  params = lstmx.init_lstm(jax.random.key(1), 3, 8, bidirectional=True,
                           dtype=jnp.float64)
  params = [[dataclasses.replace(p, w_hh=p.w_hh * pallas_gpu.block_diagonal_mask(8, 4, jnp.float64))
             for p in layer] for layer in params]
  x = jax.random.normal(jax.random.key(2), (3, 7, 3), jnp.float64)
  be = pallas_gpu.backend(blocks=pallas_gpu.GPUBlocks(heads=4))
  got = lstmx.lstm(params, x, seq_lengths=jnp.array([7, 2, 5]), backend=be)
  ref = lstmx.lstm(params, x, seq_lengths=jnp.array([7, 2, 5]), backend="reference")
  assert_trees_close(got, ref, rtol=1e-9, atol=1e-10)


def test_gpu_bad_options_name_the_argument():
  with pytest.raises(ValueError, match="heads must be a positive int; got heads=0"):
    pallas_gpu.GPUBlocks(heads=0)
  with pytest.raises(ValueError, match="block_b must be a positive int"):
    pallas_gpu.GPUBlocks(block_b=2.0)
  with pytest.raises(TypeError, match="interpret: expected None, True or False"):
    pallas_gpu.backend(interpret="no")
  with pytest.raises(TypeError, match="blocks: expected GPUBlocks"):
    pallas_gpu.backend(blocks=PallasBlocks())
  p, xs, mask, h0, c0 = _layer_problem(H=6, dtype=jnp.float32)
  with pytest.raises(ValueError, match="blocks.heads must divide H=6; got heads=4"):
    pallas_gpu.lstm_layer_pallas_gpu(p, xs, mask, h0, c0,
                                     blocks=pallas_gpu.GPUBlocks(heads=4))


def test_select_takes_a_configured_backend_object_and_still_checks_it():
  from lstmx.kernels import KernelOptions, LayerMasks, select
  from lstmx.kernels import pallas
  be = pallas.backend(interpret=True)
  assert select(be) is be
  with pytest.raises(ValueError, match=r"backend='pallas' cannot run this call: remat_every"):
    select(be, KernelOptions(remat_every=2), LayerMasks())
