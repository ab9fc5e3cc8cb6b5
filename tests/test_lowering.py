"""The Pallas kernels lower for a GPU and a TPU, checked on this CPU-only machine.

`jax.export` for ``platforms=("cuda",)`` / ``("tpu",)`` lowers the compiled
kernels (not interpret mode) without the hardware: a kernel that cannot be
lowered for a platform (e.g. Mosaic GPU's shared-memory check) fails here.
Each export is of value-and-gradient of ``lstmx.lstm``, so it holds the forward
AND the hand-written backward kernel, at the benchmark's sizes (B, T, H), D = H,
bf16 matmul inputs. What this does not check: Triton's own compilation (register
and shared-memory allocation happen in XLA on the device), speed, and on-device
values (see docs/pallas.md).
"""

import jax
import jax.numpy as jnp
import pytest

import lstmx
from lstmx.kernels import pallas, pallas_gpu

SIZES = [(32, 128, 256), (16, 512, 128), (64, 256, 512), (128, 64, 1024), (16, 1024, 768)]
TRITON = "__gpu$xla.gpu.triton"
# Triton's custom call has no export compatibility guarantee: lowering is what we check.
DISABLED = [jax.export.DisabledSafetyCheck.custom_call(TRITON)]
MARKERS = {"cuda": TRITON, "tpu": "tpu_custom_call"}


def _export(backend, platform, B, T, H, compute_dtype=jnp.bfloat16):
  """The StableHLO text of value_and_grad(lstmx.lstm) exported for `platform`."""
  # Shapes only: nothing is computed (a real init at H = 1024 costs seconds).
  params = jax.eval_shape(lambda: lstmx.init_lstm(jax.random.key(0), H, H))
  x = jax.ShapeDtypeStruct((B, T, H), jnp.float32)

  def loss(params, x):
    y, (h, c) = lstmx.lstm(params, x, backend=backend, compute_dtype=compute_dtype)
    return jnp.sum(y) + jnp.sum(h * c)

  f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  return jax.export.export(f, platforms=(platform,), disabled_checks=DISABLED)(
      params, x).mlir_module()


def _assert_compiled(text, platform, kernels=2):
  """Exactly the forward and backward kernels, compiled; no interpreter loop."""
  assert text.count(f"custom_call @{MARKERS[platform]}") == kernels
  assert "stablehlo.while" not in text  # interpret mode would unroll into a while loop


def _heads(H):
  """Heads of <= 128 units: the weight blocks stay on an H200 SM."""
  return max(1, H // 128)


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
@pytest.mark.parametrize("B,T,H", SIZES)
def test_pallas_gpu_lowers_at_benchmark_sizes(platform, B, T, H):
  be = pallas_gpu.backend(blocks=pallas_gpu.GPUBlocks(heads=_heads(H)))
  assert pallas_gpu.fits_on_chip(H, _heads(H))
  _assert_compiled(_export(be, platform, B, T, H), platform)


def test_pallas_gpu_dense_lowers_by_name():
  """``backend="pallas_gpu"`` (dense, interpret=None) exports the compiled kernel."""
  _assert_compiled(_export("pallas_gpu", "cuda", 16, 64, 128), "cuda")


@pytest.mark.parametrize("B,T,H", SIZES)
def test_pallas_lowers_for_tpu_at_benchmark_sizes(B, T, H):
  _assert_compiled(_export("pallas", "tpu", B, T, H), "tpu")


def test_pallas_whole_sequence_kernel_exceeds_gpu_shared_memory():
  """The known limit of `lstmx.kernels.pallas` (whole [T, b, 4H] blocks on chip): if this
  starts to lower, docs/pallas.md is out of date."""
  with pytest.raises(ValueError, match="shared memory"):
    _export("pallas", "cuda", 16, 32, 128)


@pytest.mark.parametrize("module", [pallas, pallas_gpu])
def test_interpret_false_is_really_compiled(module):
  """Forcing compiled mode on CPU must fail to lower (Pallas has no CPU compiler): were
  it silently replaced by interpret mode, this would run."""
  params = lstmx.init_lstm(jax.random.key(0), 16, 16)
  x = jnp.ones((16, 4, 16))
  with pytest.raises(Exception, match="(?i)interpret|cpu|platform"):
    jax.block_until_ready(lstmx.lstm(params, x, backend=module.backend(interpret=False)))


def test_on_chip_budget():
  """4 Hp^2 bf16 bytes per program against ~227 KiB: H = 128 fits, 256 does not."""
  assert pallas_gpu.weight_bytes(128) == 128 * 1024
  assert pallas_gpu.fits_on_chip(128) and not pallas_gpu.fits_on_chip(256)
  assert pallas_gpu.fits_on_chip(1024, heads=8) and not pallas_gpu.fits_on_chip(1024, heads=4)
  assert not pallas_gpu.fits_on_chip(128, dtype=jnp.float32)
  assert pallas_gpu.padded_head(768, 6) == 128 and pallas_gpu.padded_head(5) == 16
