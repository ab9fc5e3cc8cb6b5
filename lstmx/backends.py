"""The public face of the backend dispatcher (`lstmx.kernels.dispatch`).

Every backend implements the layer contract of `lstmx.kernels.contract`:
``layer(params, xs [T,B,D], mask [T,B] | None, h0, c0, masks: LayerMasks,
options: KernelOptions) -> (ys [T,B,H], (h_n, c_n))`` and says in
``unsupported(options, masks, *, dtype, platform)`` which calls it cannot run;
the regularization masks are handled inside the kernel, never by falling back
to another backend.

Backends (performance models in ``docs/backends.md``):

* ``scan``: the fused custom-VJP `lax.scan` (`lstmx.kernels.scan`), every
  platform, memory modes (``remat_every``, `lstmx.kernels.remat`).
* ``reference``: autodiff of a plain scan (`lstmx.kernels.reference`), the oracle.
* ``pallas``: the fused-recurrence Pallas kernels (`lstmx.kernels.pallas`), whole
  contract but memory modes; interpret mode on CPU. Only by name, never by ``auto``.
* ``cudnn``: cuDNN through `jax.experimental.rnn` (`lstmx.kernels.cudnn`), NVIDIA
  GPUs only, float32, no recurrent dropout / zoneout.
* ``hidden_parallel``: hidden units over a ``model`` mesh axis
  (`lstmx.kernels.hidden_parallel`), whole contract but memory modes; needs a mesh.
* ``auto``: ``hidden_parallel`` under a mesh with a ``model`` axis of more
  than one device; else ``cudnn`` on an NVIDIA GPU when the call is eligible;
  else ``scan``.

New kernels register in `lstmx.kernels.BACKENDS` and join the contract tests in
``tests/test_contract.py`` automatically.
"""

from __future__ import annotations

from lstmx.kernels import BACKENDS, KernelBackend, KernelOptions, LayerMasks
from lstmx.kernels.dispatch import Backend, current_platform, layer_fn, names, resolve, select

__all__ = ["BACKENDS", "Backend", "KernelBackend", "KernelOptions", "LayerMasks",
           "current_platform", "layer_fn", "names", "resolve", "select"]
