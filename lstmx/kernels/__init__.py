"""lstmx.kernels: the LSTM layer kernels, one module per backend, and their dispatcher.

* `cell`: THE cell's pointwise math (forward and backward), used by every backend.
* `gemm`: the shared GEMMs (mixed-precision matmul, gradients from dZ).
* `contract`: `KernelOptions`, `LayerMasks`, the `KernelBackend` protocol, the
  `BACKENDS` registry.
* one module per backend, owning only its loop, memory layout and residuals:
  `reference` (the oracle), `scan` (+ `scan_recurrence`, `remat`), `pallas`,
  `pallas_gpu` (+ `pallas_gpu_kernels`; both Pallas backends share `pallas_common`),
  `cudnn`, `hidden_parallel`, `deer` (the Newton backends ``deer``, ``block_deer``,
  ``quasi_deer``, + `deer_solve`, `deer_linear`, and `kalman` for ELK's damping).
* `dispatch`: the one dispatcher (`select`, `resolve`).

A new backend is a module that defines ``layer(params, xs, mask, h0, c0, masks,
options)`` and registers a `KernelBackend` (e.g. ``LayerBackend(name, layer)``)
in `BACKENDS`; the contract suite (``tests/test_contract.py``) then runs it.
Optional ones register lazily below, so ``import lstmx`` never imports
``jax.experimental.pallas`` or ``jax.experimental.rnn``.
"""

# Imported for their registration, in the order `names()` lists them.
from lstmx.kernels import scan  # noqa: F401, I001
from lstmx.kernels import reference  # noqa: F401, I001
from lstmx.kernels import hidden_parallel  # noqa: F401, I001
from lstmx.kernels import deer  # noqa: F401, I001
from lstmx.kernels.cell import (activate, activate_fused, cell_backward, cell_forward,
                                gate_derivative, lstm_step, zoneout_mix)
from lstmx.kernels.contract import (BACKENDS, KernelBackend, KernelOptions, LayerBackend,
                                    LayerMasks)
from lstmx.kernels.dispatch import Backend, current_platform, names, resolve, select

BACKENDS.register_lazy("pallas", "lstmx.kernels.pallas:BACKEND")
BACKENDS.register_lazy("cudnn", "lstmx.kernels.cudnn:BACKEND")
BACKENDS.register_lazy("pallas_gpu", "lstmx.kernels.pallas_gpu:BACKEND")

__all__ = [
    "BACKENDS", "Backend", "KernelBackend", "KernelOptions", "LayerBackend", "LayerMasks",
    "activate", "activate_fused", "cell_backward", "cell_forward", "current_platform",
    "gate_derivative", "lstm_step", "names", "resolve", "select", "zoneout_mix",
]
