"""Analytic FLOP counts of a training step (forward + backward), by matmuls.

A matmul [m, k] @ [k, n] costs 2mkn FLOPs; its backward costs twice that (the
gradients with respect to both operands), so a training step costs about
3 x the forward's matmuls. Elementwise work (gates, softmax, LayerNorm), the
loss and the optimizer update are left out: they are small where the matmuls
are large, which tests/test_flops.py checks against XLA's cost analysis
(`lstmx.compile_stats`) within 5 %.

LSTM layer (input D, hidden H; i, f, g, o gates from one fused matmul per
operand), for B sequences of T steps:

    forward = 2 B T (D + H) 4H

Transformer block (width d, feed-forward ff_multiple * d; attention over all
T x T query-key pairs, causal or not, as dense attention computes them):

    forward = 8 B T d^2  (q, k, v, out projections)
            + 4 ff_multiple B T d^2  (feed-forward)
            + 4 B T^2 d  (q k^T and weights @ v, all heads together)

which is 24 B T d^2 + 4 B T^2 d at ff_multiple = 4. The input embedding and
the output head (2 B T (D d + d O)) are counted too: small for few inputs and
outputs, but exact.

XLA's cost analysis counts the body of a while loop once, not once per trip:
for a scanned LSTM its number is about one step's, so the analytic count is
the one to use there (the test checks it on a Python-unrolled LSTM, where XLA
sees every step).
"""

from __future__ import annotations

TRAIN_MULTIPLE = 3  # forward + backward (two matmuls per forward matmul)


def _check(**sizes) -> None:
  for name, v in sizes.items():
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name}: expected a positive int; got {v!r}")


def lstm_flops(B: int, T: int, D: int, H: int, num_layers: int = 1, O: int = 0,
               train: bool = True) -> float:
  """Matmul FLOPs of a stacked LSTM (layer 1 reads D inputs, the others H) and a
  linear head of `O` outputs per step, forward only or a training step (x 3)."""
  _check(B=B, T=T, D=D, H=H, num_layers=num_layers)
  forward = sum(2 * B * T * ((D if layer == 0 else H) + H) * 4 * H
                for layer in range(num_layers)) + 2 * B * T * H * O
  return float(forward * (TRAIN_MULTIPLE if train else 1))


def transformer_flops(B: int, T: int, d: int, num_layers: int = 1, ff_multiple: int = 4,
                      D: int = 0, O: int = 0, train: bool = True) -> float:
  """Matmul FLOPs of a Transformer encoder of width `d` with an embedding of `D`
  inputs and a head of `O` outputs, forward only or a training step (x 3)."""
  _check(B=B, T=T, d=d, num_layers=num_layers, ff_multiple=ff_multiple)
  block = (8 + 4 * ff_multiple) * B * T * d * d + 4 * B * T * T * d
  forward = num_layers * block + 2 * B * T * d * (D + O)
  return float(forward * (TRAIN_MULTIPLE if train else 1))
