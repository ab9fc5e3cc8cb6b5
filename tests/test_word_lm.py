"""Word-level language modelling: the Brown loader on a fixture the test writes (and
on the fetched corpus when data/brown exists), PTB through the stream task, and a
TBPTT run with NT-ASGD that switches to averaging and resumes exactly."""

import pathlib

import numpy as np
import pytest

from lstmx import data, tasks
from lstmx.config import Config, ModelConfig, OptimizerConfig, TaskConfig, TrainConfig
from lstmx.data.corpora import brown_split
from lstmx.data.dataset import DataNotFoundError
from lstmx.train.loop import train_and_evaluate

DOC = ("\n\n\tThe/at jury/nn said/vbd ./.\n\n\n\tIt/pps cost/vbd 1/2/cd-hl dollars/nns ./.\n"
       "\n")


@pytest.fixture
def brown_root(tmp_path):
  """21 tagged documents ca01 .. ca21 (document i's last word is doc{i})."""
  folder = tmp_path / "brown"
  folder.mkdir()
  for i in range(21):
    (folder / f"ca{i + 1:02d}").write_text(DOC + f"\tDoc{i}/np ./.\n")
  (folder / "cats.txt").write_text("ca01 news\n")  # not a document
  return tmp_path


def test_brown_fixture_words_sentences_and_document_split(brown_root):
  train = data.load("brown", "train", root=brown_root)
  val, test = (data.load("brown", s, root=brown_root) for s in ("validation", "test"))
  words = train.vocab.decode(train.inputs)
  assert words[:10] == ["the", "jury", "said", ".", "<eos>", "it", "cost", "1/2", "dollars", "."]
  assert words[10:14] == ["<eos>", "doc0", ".", "<eos>"]  # one <eos> per non-blank line
  assert train.kind == "lm" and train.inputs.dtype == np.int32 and train.num_classes == len(
      train.vocab)
  # Documents 10 and 19 (0-based) go to validation and test, the rest to train.
  assert [brown_split(i) for i in (9, 10, 19, 20)] == ["train", "validation", "test", "train"]
  assert len(train.inputs) == 19 * 14 and len(val.inputs) == len(test.inputs) == 14
  assert val.vocab.decode(val.inputs)[11] == "<unk>"  # doc10 is not a train word
  assert "doc10" not in train.vocab and "doc9" in train.vocab


def test_brown_vocab_size_keeps_the_most_frequent_words(brown_root):
  small = data.load("brown", "train", root=brown_root, vocab_size=5)
  assert small.vocab.tokens[:2] == ("<unk>", "<eos>") and len(small.vocab) == 5
  assert "." in small.vocab and "doc3" not in small.vocab
  with pytest.raises(ValueError, match="vocab_size"):
    data.load("brown", "train", root=brown_root, vocab_size=1)


def test_brown_missing_names_the_fetch_command(tmp_path):
  with pytest.raises(DataNotFoundError, match="scripts/fetch_data.py brown"):
    data.load("brown", "train", root=tmp_path)


def test_fetched_brown_corpus_sizes():
  try:
    splits = [data.load("brown", s) for s in data.SPLITS]
  except DataNotFoundError:
    pytest.skip("the Brown corpus is not fetched (python scripts/fetch_data.py brown)")
  sizes = [len(d.inputs) for d in splits]
  assert 1_000_000 < sizes[0] < 1_200_000 and all(40_000 < n < 80_000 for n in sizes[1:])
  assert splits[0].num_classes == 10000


PTB = {"ptb.train.txt": " a b a b a b a b \n" * 30, "ptb.valid.txt": " b b b b b b \n" * 2,
       "ptb.test.txt": " a b b a \n"}


@pytest.fixture
def ptb(tmp_path):
  folder = tmp_path / "ptb"
  folder.mkdir()
  for name, text in PTB.items():
    (folder / name).write_text(text)
  return str(folder)


def test_stream_lm_on_ptb_files(ptb):
  task = tasks.make("stream_lm", dataset="ptb", path=ptb, seq_len=4)
  assert task.input_size == task.output_size == 4  # <unk>, <eos>, a, b
  assert task.eval_size("test", 0) == 4  # "a b b a <eos>": 5 tokens, 4 predictions
  assert task.baseline_loss == pytest.approx(
      -sum(p * np.log(p) for p in (4 / 9, 4 / 9, 1 / 9)), rel=1e-6)
  with pytest.raises(ValueError, match="stream_lm.seq_len"):
    tasks.make("stream_lm", dataset="ptb", path=ptb, seq_len=10_000).windows_per_epoch(1)
  with pytest.raises(ValueError, match="stream_lm.eval_rows"):
    tasks.make("stream_lm", dataset="ptb", path=ptb, eval_rows=0)
  with pytest.raises(ValueError, match="train.batch_size"):
    task.windows_per_epoch(200)


def _config(ptb, steps):
  return Config(
      name="nt", model=ModelConfig(hidden_size=16, num_layers=2, embedding_size=8),
      task=TaskConfig(name="stream_lm", params={"dataset": "ptb", "path": ptb, "seq_len": 5}),
      optimizer=OptimizerConfig(name="sgd", lr=2.0, momentum=0.0, averaging="nt", nonmono=0,
                                clip_norm=0.25),
      train=TrainConfig(steps=steps, batch_size=4, log_every=5, eval_every=5,
                        checkpoint_every=5, progress=False))


def test_nt_asgd_stream_run_switches_to_averaging_and_resumes_exactly(ptb, tmp_path):
  """Train alternates a/b, validation repeats b: validation gets worse as training
  learns, so NT-ASGD (nonmono 0) switches on; a run stopped mid-epoch and extended
  (the carried state restored from its checkpoint) equals the whole run."""
  whole = train_and_evaluate(_config(ptb, 30), str(tmp_path / "whole"))
  start = whole["averaging"]["start_step"]
  assert whole["status"] == "completed" and start is not None and start < 30, whole
  assert whole["at_best"]["step"] <= start  # selected on validation only
  assert whole["final"]["validation"]["perplexity"] == pytest.approx(
      np.exp(whole["final"]["validation"]["loss"]))
  pathlib.Path(tmp_path / "split").mkdir()
  train_and_evaluate(_config(ptb, 15), str(tmp_path / "split"))
  resumed = train_and_evaluate(_config(ptb, 30), str(tmp_path / "split"), force=True)
  assert resumed["averaging"] == whole["averaging"]
  assert resumed["final"] == whole["final"]


def test_stream_task_needs_an_embedding(ptb, tmp_path):
  cfg = _config(ptb, 5)
  cfg = cfg.__class__(**{**cfg.__dict__, "model": ModelConfig(hidden_size=8)})
  with pytest.raises(ValueError, match="model.embedding_size"):
    train_and_evaluate(cfg, str(tmp_path / "run"))
