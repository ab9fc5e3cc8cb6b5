"""Readable names of a sweep's trials and their TensorBoard links (`lstmx.lab.run_names`)."""

import os

from lstmx.lab import run_names
from lstmx.lab.run_names import link_tensorboard, value_text


def _trials(sweep, seeds=(0, 1)):
  return [(f"{i:02d}{s}abcdef", {**ov, "train.seed": s})
          for i, ov in enumerate(sweep) for s in seeds]


def test_names_are_the_values_that_tell_trials_apart_then_the_seed():
  sweep = [{"meta.model": m, "meta.length": t, "task.name": "copy", "task.params.length": t,
            "model.init": "chrono" if "chrono" in m else "forget_bias"}
           for m in ("lstm", "lstm_chrono") for t in (100, 200)]
  names = run_names.run_names(_trials(sweep))
  assert list(names.values())[:4] == ["lstm-T100-s0", "lstm-T100-s1", "lstm-T200-s0",
                                      "lstm-T200-s1"]
  assert names["020abcdef"] == "lstm_chrono-T100-s0"


def test_labels_that_leave_trials_alike_get_the_keys_that_differ():
  sweep = [{"meta.model": m, "model.hidden_size": h, "optimizer.lr": 0.1}
           for m in ("lstm", "gru") for h in (16, 64)]
  assert list(run_names.run_names(_trials(sweep, [0])).values()) == [
      "lstm-H16-s0", "lstm-H64-s0", "gru-H16-s0", "gru-H64-s0"]
  plain = [{"optimizer.lr": lr, "model.bidirectional": b} for lr in (1e-3, 0.01)
           for b in (True, False)]  # no labels: every key that varies
  assert sorted(run_names.run_names(_trials(plain, [3])).values()) == [
      "lr0.001-bidirectional-s3", "lr0.001-no_bidirectional-s3", "lr0.01-bidirectional-s3",
      "lr0.01-no_bidirectional-s3"]


def test_names_are_unique_and_safe_as_file_names():
  same = _trials([{"meta.x": "a/b c"}, {"meta.x": "a:b c"}], [0])  # clash once made safe
  names = run_names.run_names(same)
  assert len(set(names.values())) == 2
  assert all(n.startswith("a_b_c-s0-") and "/" not in n for n in names.values())
  assert value_text("model.image_shape", (8, 8, 1)) == "image_shape8x8x1"
  assert value_text("meta.strength", 0.25) == "strength0.25"
  assert run_names.run_names([("abc", {})]) == {"abc": "run"}


def test_links_point_at_each_trials_tensorboard_and_follow_renames(tmp_path):
  trials = _trials([{"meta.model": "lstm"}, {"meta.model": "gru"}], [0])
  for tid, _ in trials:
    os.makedirs(tmp_path / "trials" / tid / "tensorboard")
  links = link_tensorboard(str(tmp_path), trials)
  assert sorted(os.listdir(links)) == ["gru-s0", "lstm-s0"]
  assert os.path.samefile(os.path.join(links, "gru-s0"),
                          tmp_path / "trials" / trials[1][0] / "tensorboard")
  assert os.readlink(os.path.join(links, "lstm-s0")) == os.path.join(
      "..", "trials", trials[0][0], "tensorboard")  # relative: the directory can move
  link_tensorboard(str(tmp_path), trials[:1])  # a trial gone: its link goes too
  assert os.listdir(links) == ["lstm-s0"]
