"""The fused gate activation and its derivative against their plain references."""

import jax
import jax.numpy as jnp
import numpy as np

from lstmx.kernels.cell import activate, activate_fused, gate_derivative


def test_activate_fused_equals_activate(x64):
  z = 4 * jax.random.normal(jax.random.key(0), (3, 4 * 5), jnp.float64)
  np.testing.assert_allclose(activate_fused(z), jnp.concatenate(activate(z), axis=-1),
                             rtol=1e-14, atol=1e-15)


def test_gate_derivative_equals_autodiff(x64):
  z = 4 * jax.random.normal(jax.random.key(1), (2, 4 * 3), jnp.float64)
  _, jvp = jax.jvp(lambda z: jnp.concatenate(activate(z), axis=-1), (z,), (jnp.ones_like(z),))
  np.testing.assert_allclose(gate_derivative(activate_fused(z)), jvp, rtol=1e-13, atol=1e-15)
