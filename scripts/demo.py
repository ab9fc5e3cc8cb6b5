"""Trains a small LSTM on the adding problem on CPU and prints its loss falling.

The adding problem (Hochreiter & Schmidhuber 1997; modern form of Le et al. 2015):
each step carries a value in U[0, 1] and a marker; exactly two steps are
marked, and the target is the sum of their values. Predicting the mean (1.0)
gives MSE 1/6, the memoryless baseline.

    python scripts/demo.py [--steps 500] [--length 50]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import lstmx


def adding_batch(key, batch_size: int, length: int):
  k_val, k_pos = jax.random.split(key)
  values = jax.random.uniform(k_val, (batch_size, length))
  first = jax.random.randint(k_pos, (batch_size,), 0, length // 2)
  second = jax.random.randint(jax.random.fold_in(k_pos, 1), (batch_size,), length // 2, length)
  pos = jnp.arange(length)[None, :]
  markers = ((pos == first[:, None]) | (pos == second[:, None])).astype(jnp.float32)
  inputs = jnp.stack([values, markers], axis=-1)
  return inputs, jnp.sum(values * markers, axis=1)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=500)
  ap.add_argument("--length", type=int, default=50)
  ap.add_argument("--hidden", type=int, default=64)
  ap.add_argument("--batch", type=int, default=64)
  args = ap.parse_args()

  key = jax.random.key(0)
  params = {"lstm": lstmx.init_lstm(key, 2, args.hidden),
            "head": jnp.zeros((args.hidden,)), "bias": jnp.ones(())}
  opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))
  opt_state = opt.init(params)

  def loss_fn(params, inputs, targets):
    _, (h, _) = lstmx.lstm(params["lstm"], inputs)
    pred = h[-1] @ params["head"] + params["bias"]
    return jnp.mean((pred - targets) ** 2)

  @jax.jit
  def train_step(params, opt_state, key):
    inputs, targets = adding_batch(key, args.batch, args.length)
    loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  print(f"adding problem, T={args.length}, H={args.hidden}, batch={args.batch}, "
        f"backend={lstmx.backends.resolve('auto').value}, device={jax.devices()[0].platform}")
  print(f"memoryless baseline MSE = {1 / 6:.4f}")
  start, running = time.perf_counter(), []
  for step in range(1, args.steps + 1):
    params, opt_state, loss = train_step(params, opt_state, jax.random.fold_in(key, step))
    running.append(float(loss))
    if step % 25 == 0 or step == 1:
      avg = sum(running) / len(running)
      print(f"step {step:5d}  loss {avg:.4f}  ({avg * 6:.2f} x baseline)  "
            f"{time.perf_counter() - start:6.1f}s", flush=True)
      running = []


if __name__ == "__main__":
  main()
