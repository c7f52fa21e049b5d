"""Run bookkeeping: the best / early-stopping state and the loss window survive a checkpoint's JSON unchanged; the
TensorBoard writer comes without PyTorch."""

import json
import math
import subprocess
import sys

import ml_collections
import numpy as np
from runs import read_events

from mtl_jax.run_state import Tracker, TrainWindow


def train_cfg(mode="max", patience=2):
  return ml_collections.ConfigDict(dict(best_metric="eval/mean/main", best_mode=mode, patience=patience))


def test_tracker_keeps_the_best_and_stops_after_patience():
  tracker, tc = Tracker(), train_cfg()
  improved = [tracker.update({"eval/mean/main": v}, tc) for v in (0.5, 0.7, 0.6, math.nan, 0.7)]
  assert improved == [True, True, False, False, False]  # NaN neither improves nor counts; a tie is no improvement
  assert tracker.best == 0.7 and tracker.bad_evals == 2 and tracker.stopped
  low = Tracker()
  assert [low.update({"eval/mean/main": v}, train_cfg("min", 0)) for v in (3.0, 2.0, 2.5)] == [True, True, False]
  assert low.best == 2.0 and not low.stopped  # patience 0: never stops


def test_tracker_json_round_trip_and_test_only_once_scored():
  tracker = Tracker()
  tracker.update({"eval/mean/main": 0.25, "eval/a/loss": 1.5}, train_cfg())
  assert "test" not in tracker.to_json()  # absent until the best model was scored on test
  tracker.test = {"test/mean/main": 0.2}
  state = json.loads(json.dumps(tracker.to_json()))  # as a checkpoint's meta stores it
  assert Tracker.from_json(state) == tracker
  assert Tracker.from_json({**state, "window": {"steps": 1}}) == tracker  # the loss window travels beside it


def test_train_window_state_resumes_the_same_log_event():
  out = {"loss": np.float32(1.5), "sums": np.array([3.0, 1.0], np.float32), "counts": np.array([2.0, 1.0], np.float32)}
  whole = TrainWindow()
  for _ in range(3):
    whole.add(out, examples=4, real_tokens=30, tokens=40)
  part = TrainWindow()
  part.add(out, 4, 30, 40)
  resumed = TrainWindow(json.loads(json.dumps(part.state())))
  for _ in range(2):
    resumed.add(out, 4, 30, 40)
  drop = lambda values: {k: v for k, v in values.items() if not k.endswith("per_sec")}
  layout = type("L", (), {"names": ("a", "b")})()
  assert drop(resumed.close(3, layout)) == drop(whole.close(3, layout))
  assert TrainWindow().state() is None  # an empty window writes nothing


def test_tensorboard_events_are_written_without_importing_torch(tmp_path):
  """tensorboardX would import PyTorch (installed with the test extras) at every run's start; the metrics log gets its
  writer without it, and the events it writes hold the scalars. A fresh interpreter: this one may have torch already."""
  script = f"""
import sys
from mtl_jax.run_state import MetricsLog
log = MetricsLog({str(tmp_path)!r}, enabled=True)
log.start(0, "seed: 0", tensorboard=True)
log.write(3, {{"train/loss": 0.5}})
log.close()
print("torch" in sys.modules)
"""
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False"], out.stdout + out.stderr
  assert [(e.step, v.simple_value) for e in read_events(tmp_path / "tensorboard") for v in e.summary.value
          if v.tag == "train/loss"] == [(3, 0.5)]
