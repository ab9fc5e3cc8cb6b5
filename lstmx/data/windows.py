"""Cutting streams into windows: forecasting windows and TBPTT batches.

Truncated backpropagation through time for language models, as in AWD-LSTM
(Merity et al. 2018, ``batchify``/``get_batch``): the token stream is cut
into B contiguous rows, ``stream[b] = tokens[b*L:(b+1)*L]`` with
``L = N // B`` (the tail is dropped), and step k reads columns
``[k*T, k*T + t)`` as inputs and ``[k*T + 1, k*T + 1 + t)`` as targets,
``t = min(T, L - 1 - k*T)``. Row b continues across steps, so the final LSTM
state of one step is the initial state of the next.

Example:
  >>> stream = batchify(np.arange(10), 2)          # [[0 1 2 3 4], [5 6 7 8 9]]
  >>> [x.tolist() for x, _ in tbptt_batches(stream, 3)]
  [[[0, 1, 2], [5, 6, 7]], [[3], [8]]]
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def _positive(name: str, value) -> None:
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name}: expected a positive int; got {name}={value!r}")


def forecast_windows(series: np.ndarray, window: int, horizon: int = 1, *,
                     start: int = 0, stop: int | None = None, stride: int = 1
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Sliding (input window, horizon) pairs whose targets lie in [start, stop).

  Args:
    series: [T] or [T, D] values in time order.
    window: W, past steps in each input.
    horizon: K, future steps in each target.
    start, stop: the time range the targets must lie in (a split); inputs may
      look back before `start`, into the history a forecaster has.
    stride: steps between consecutive windows.

  Returns:
    inputs [N, W, D], targets [N, K, D] (same dtype as `series`) and t0 [N]
    int64, the time step of each example's first target:
    ``inputs[n] = series[t0-W:t0]``, ``targets[n] = series[t0:t0+K]``.
  """
  for name, value in (("window", window), ("horizon", horizon), ("stride", stride)):
    _positive(name, value)
  series = np.asarray(series)
  if series.ndim == 1:
    series = series[:, None]
  if series.ndim != 2:
    raise ValueError(f"series: expected shape [T] or [T, D]; got {series.shape}")
  stop = len(series) if stop is None else stop
  if not 0 <= start <= stop <= len(series):
    raise ValueError(f"start, stop: expected 0 <= start <= stop <= {len(series)}; got "
                     f"start={start}, stop={stop}")
  t0 = np.arange(max(start, window), stop - horizon + 1, stride, dtype=np.int64)
  if len(t0) == 0:
    raise ValueError(f"window, horizon: expected room for one window in [{start}, {stop}); "
                     f"got window={window}, horizon={horizon}")
  views = np.lib.stride_tricks.sliding_window_view(series, window + horizon, axis=0)
  pairs = np.moveaxis(views[t0 - window], -1, 1)  # [N, W + K, D]
  return pairs[:, :window].copy(), pairs[:, window:].copy(), t0


def batchify(tokens: np.ndarray, batch_size: int) -> np.ndarray:
  """[N] token stream -> [B, N // B] contiguous rows (the tail is dropped)."""
  _positive("batch_size", batch_size)
  tokens = np.asarray(tokens)
  if tokens.ndim != 1:
    raise ValueError(f"tokens: expected a stream of shape [N]; got {tokens.shape}")
  length = len(tokens) // batch_size
  if length < 2:
    raise ValueError(f"batch_size: expected at most N // 2 = {len(tokens) // 2} so that "
                     f"each row holds an input and a target; got {batch_size}")
  return tokens[: batch_size * length].reshape(batch_size, length)


def num_tbptt_steps(length: int, seq_len: int, drop_remainder: bool = False) -> int:
  """Steps of `tbptt_batches` over rows of `length` tokens."""
  return (length - 1) // seq_len if drop_remainder else -(-(length - 1) // seq_len)


def tbptt_batches(stream: np.ndarray, seq_len: int, *, start_step: int = 0,
                  drop_remainder: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (inputs [B, t], targets [B, t]) windows of a batchified stream.

  Args:
    stream: [B, L] from `batchify`.
    seq_len: T, the truncation length; the last window may be shorter.
    start_step: the first step to yield (resume a run exactly mid-epoch).
    drop_remainder: skips a last window shorter than T (fixed shapes for jit).

  Yields:
    ``(stream[:, i:i+t], stream[:, i+1:i+1+t])`` for ``i = k*T``,
    ``k = start_step, ...``.
  """
  _positive("seq_len", seq_len)
  stream = np.asarray(stream)
  if stream.ndim != 2:
    raise ValueError(f"stream: expected shape [B, L] (see batchify); got {stream.shape}")
  steps = num_tbptt_steps(stream.shape[1], seq_len, drop_remainder)
  if not 0 <= start_step <= steps:
    raise ValueError(f"start_step: expected in [0, {steps}]; got {start_step}")
  for k in range(start_step, steps):
    i = k * seq_len
    t = min(seq_len, stream.shape[1] - 1 - i)
    yield stream[:, i:i + t], stream[:, i + 1:i + 1 + t]
