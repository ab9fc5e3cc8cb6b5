"""What XLA says about a compiled program: its memory and its FLOPs.

One formula for "compiled memory", used by the training engine, the compute
experiment and the benchmarks:

    peak_bytes = argument + output - alias + temp

(``alias`` counts the outputs that reuse a donated argument's buffer, so they
are not counted twice). Numbers are XLA's static analysis of the compiled
program, exact for its buffers, not a measurement of the process.

    >>> compiled = jax.jit(lambda x: x @ x).lower(jnp.ones((4, 4))).compile()
    >>> compile_stats(compiled)["peak_bytes"] > 0
    True

This module imports nothing from lstmx: every layer may use it.
"""

from __future__ import annotations

import math


def compile_stats(compiled) -> dict[str, float | int]:
  """Memory and cost of a `jax.stages.Compiled`.

  Returns:
    ``temp_bytes``, ``argument_bytes``, ``output_bytes``, ``alias_bytes`` and
    ``peak_bytes`` (see the module docstring) where the backend reports a
    memory analysis (absent otherwise), and ``flops``: XLA's estimate, NaN
    where the backend gives none.
  """
  out: dict[str, float | int] = {}
  mem = compiled.memory_analysis()
  if mem is not None:
    sizes = {k: int(getattr(mem, f"{k}_size_in_bytes"))
             for k in ("temp", "argument", "output", "alias")}
    out.update({f"{k}_bytes": v for k, v in sizes.items()})
    out["peak_bytes"] = (sizes["argument"] + sizes["output"] - sizes["alias"]
                         + sizes["temp"])
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
  out["flops"] = float(cost.get("flops", math.nan)) if isinstance(cost, dict) else math.nan
  return out
