"""The training engine: a pure train step, a short resumable loop, run directories."""

from lstmx.train.batched import train_group
from lstmx.train.checkpoint import Checkpoints
from lstmx.train.loop import evaluate, train_and_evaluate
from lstmx.train.step import TrainState, init_state, make_eval_step, make_train_step

__all__ = ["Checkpoints", "TrainState", "evaluate", "init_state", "make_eval_step",
           "make_train_step", "train_and_evaluate", "train_group"]
