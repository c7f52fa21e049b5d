"""Run bookkeeping: one run per workdir (a lock), the metrics log (metrics.jsonl and TensorBoard), the training-loss
window between log events, the best / early-stopping state, and preemption. What must survive a restart travels in
the checkpoint's meta as JSON (`Tracker.to_json`, `TrainWindow.state`), so a resumed run logs and stops exactly as an
uninterrupted one.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
import socket
import sys
import time

import jax
import numpy as np
import tqdm

from mtl_jax.errors import UserError
from mtl_jax.losses import task_means
from mtl_jax.tasks import Layout


def log(message: str) -> None:
  """A line on the console (process 0), above the progress bar."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


@contextlib.contextmanager
def workdir_lock(workdir: str, process: int = 0):
  """Holds `<workdir>/.lock.<process>` (fcntl.flock, exclusive) while the run writes there, with its holder (host, pid,
  start time) inside; a second run on the workdir gets a UserError naming the holder. One file per process index, so
  the processes of one run don't block one another. The kernel drops the lock when its process ends, however it ends
  (SIGKILL too), so a dead run's lock is taken over without a check of its own."""
  path = os.path.join(workdir, f".lock.{process}")
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise UserError(f"{workdir}: in use by another run ({lock_holder(path)}); wait for it to end or use another "
                      "--workdir") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}).encode())
    yield
  finally:
    os.close(fd)  # releases the lock


def lock_holder(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      holder = json.load(f)
    return f"host {holder['host']}, pid {holder['pid']}, started {holder['started']}"
  except (OSError, ValueError, KeyError):  # the holder has not written itself yet
    return "holder not known yet"


def _summary_writer_class():
  """tensorboardX's SummaryWriter, imported without PyTorch: tensorboardX imports torch whenever it is installed
  (2-4 s of a run's start) only to accept torch tensors, and we log Python floats. A torch the process already
  imported is left alone."""
  blocked = "torch" not in sys.modules
  if blocked:
    sys.modules["torch"] = None  # `import torch` raises ImportError, which tensorboardX expects when it is absent
  try:
    from tensorboardX import SummaryWriter
  finally:
    if blocked:
      del sys.modules["torch"]
  return SummaryWriter


class MetricsLog:
  """Appends one JSON object per event to workdir/metrics.jsonl and, when asked, the same scalars to TensorBoard
  event files in workdir/tensorboard (tensorboardX: no TensorFlow needed). Process 0 only."""

  def __init__(self, workdir: str, enabled: bool):
    self.path, self.enabled = os.path.join(workdir, "metrics.jsonl"), enabled
    self.board_dir, self.board = os.path.join(workdir, "tensorboard"), None

  def start(self, step: int, config_text: str, tensorboard: bool) -> None:
    """On (re)start from the checkpoint at `step`: drop metrics.jsonl events newer than it, so the history matches
    an uninterrupted run; the TensorBoard writer's purge_step makes TensorBoard drop its newer events likewise."""
    if not self.enabled:
      return
    if os.path.exists(self.path):
      with open(self.path, encoding="utf-8") as f:
        kept = [line for line in f if _event_step(line) <= step]
      with open(self.path, "w", encoding="utf-8") as f:
        f.writelines(kept)
    if tensorboard:
      SummaryWriter = _summary_writer_class()
      self.board = SummaryWriter(self.board_dir, purge_step=step + 1 if step else None)
      self.board.add_text("config", f"```\n{config_text}\n```", step)

  def write(self, step: int, values: dict) -> None:
    if not self.enabled:
      return
    try:
      with open(self.path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, **{k: _jsonable(v) for k, v in values.items()}}) + "\n")
    except OSError as e:  # a torn last line is dropped when the run resumes (`_event_step`)
      raise _write_error(self.path, step, e) from None
    if self.board is not None:
      try:  # the flush reaches the disk here, in this thread (the writer's own thread only fills the file's buffer)
        for k, v in values.items():
          if _jsonable(v) is not None:
            self.board.add_scalar(k, float(v), step)
        self.board.flush()
      except OSError as e:  # the next run writes a new event file and purges this one's later steps
        self.board = None  # closing it would fail again and hide this error
        raise _write_error(self.board_dir, step, e) from None

  def close(self) -> None:
    if self.board is not None:
      self.board.close()


def _write_error(path: str, step: int, error: OSError) -> UserError:
  return UserError(f"{path}: cannot write step {step}'s metrics ({error.strerror}); the checkpoints are as they were: "
                   "make room (or the directory writable) and run the same command")


def _event_step(line: str) -> float:
  """The step of one metrics.jsonl line; a torn line (a crash mid-write) counts as after every checkpoint."""
  try:
    return json.loads(line)["step"]
  except (json.JSONDecodeError, KeyError, TypeError):
    return float("inf")


def _jsonable(v):
  v = float(v)
  return v if np.isfinite(v) else None


@dataclasses.dataclass
class Tracker:
  """The best value of `train.best_metric` so far, early-stopping counters, the last evaluation's metrics and the best
  model's test metrics (once scored)."""
  best: float | None = None
  bad_evals: int = 0
  stopped: bool = False
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)
  test: dict[str, float] | None = None

  def to_json(self) -> dict:
    state = dataclasses.asdict(self)
    return state if self.test is not None else {k: v for k, v in state.items() if k != "test"}

  @classmethod
  def from_json(cls, state: dict) -> "Tracker":
    return cls(**{f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state})

  def update(self, flat: dict[str, float], tc) -> bool:
    """Best value and early-stopping counters after an evaluation; True when this evaluation is the best so far."""
    self.metrics = flat
    value = flat[tc.best_metric]
    if not np.isfinite(value):  # e.g. a task without labels in the validation data: no evidence either way
      log(f"warning: {tc.best_metric} is {value}; this evaluation neither improves nor counts toward patience")
      return False
    if self.best is None or (value > self.best if tc.best_mode == "max" else value < self.best):
      self.best, self.bad_evals = value, 0
      return True
    self.bad_evals += 1
    self.stopped = tc.patience > 0 and self.bad_evals >= tc.patience
    if self.stopped:
      log(f"early stop: {tc.best_metric} did not improve for {tc.patience} evaluations")
    return False


class TrainWindow:
  """Training losses accumulated on device between two log events (no host sync per step), and on the host the
  examples and tokens: real (non-pad) and processed (batch x padded length)."""

  def __init__(self, state: dict | None = None):
    self.sums, self.counts, self.loss, self.steps, self.examples = 0.0, 0.0, 0.0, 0, 0
    self.real_tokens, self.tokens, self.extras = 0, 0, {}  # extras: optional scalars of the step, e.g. PCGrad's
    if state:  # a window interrupted by a checkpoint between two log events, so the resumed log is the same
      self.sums, self.counts = (np.asarray(state[k], np.float32) for k in ("sums", "counts"))
      self.loss, self.steps, self.examples = np.float32(state["loss"]), state["steps"], state["examples"]
      self.real_tokens, self.tokens = state.get("real_tokens", 0), state.get("tokens", 0)
      self.extras = {k: np.float32(v) for k, v in state.get("extras", {}).items()}
    self.start = time.perf_counter()

  def state(self) -> dict | None:
    """The accumulated values as JSON (None when empty), to travel with a checkpoint."""
    if not self.steps:
      return None
    return {"sums": np.asarray(self.sums).tolist(), "counts": np.asarray(self.counts).tolist(),
            "loss": float(self.loss), "steps": self.steps, "examples": self.examples,
            "real_tokens": self.real_tokens, "tokens": self.tokens,
            "extras": {k: float(v) for k, v in self.extras.items()}}

  def add(self, out: dict, examples: int, real_tokens: int, tokens: int) -> None:
    self.sums, self.counts, self.loss = self.sums + out["sums"], self.counts + out["counts"], self.loss + out["loss"]
    self.steps, self.examples = self.steps + 1, self.examples + examples
    self.real_tokens, self.tokens = self.real_tokens + real_tokens, self.tokens + tokens
    for k in out.keys() - {"loss", "sums", "counts"}:
      self.extras[k] = self.extras.get(k, 0.0) + out[k]

  def task_losses(self, layout: Layout) -> dict[str, float]:
    return dict(zip(layout.names, np.asarray(task_means(self.sums, self.counts)).tolist()))

  def check(self, step: int, layout: Layout) -> None:
    """Raises when a loss since the last log event was NaN/inf (a NaN stays in the sums), before anything is saved."""
    if self.steps and not np.isfinite(float(self.loss)):
      raise UserError(f"non-finite training loss by step {step} (task losses over the last {self.steps} steps: "
                      f"{self.task_losses(layout)}); nothing from these steps was saved. Lower "
                      "config.train.learning_rate, or look for extreme weights in the data")

  def close(self, step: int, layout: Layout) -> dict[str, float]:
    """The window's mean objective, per-task losses (sums over counts) and throughput; raises on NaN/inf."""
    self.check(step, layout)
    loss, task_loss = float(self.loss) / self.steps, self.task_losses(layout)
    return {"train/loss": loss, "train/examples_per_sec": self.examples / (time.perf_counter() - self.start),
            "train/real_token_fraction": self.real_tokens / max(self.tokens, 1),
            **{f"train/{name}/loss": v for name, v in task_loss.items()},
            **{f"train/{k}": float(v) / self.steps for k, v in self.extras.items()}}


class Preemption:
  """SIGTERM (a preemptible VM going away) asks the loop to checkpoint at the next step boundary and return.

  With several processes, the processes agree at log steps (`sync`: one small all-gather there, no host sync in
  between): all of them stop at the first log step after any got the signal, and save that step together."""

  def __init__(self):
    self.signalled = False
    self._previous = signal.signal(signal.SIGTERM, self._request)

  def _request(self, signum, frame) -> None:
    self.signalled = True

  def requested(self, sync: bool) -> bool:
    if jax.process_count() == 1:
      return self.signalled
    if not sync:
      return False
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(self.signalled))))

  def close(self) -> None:
    signal.signal(signal.SIGTERM, self._previous)
