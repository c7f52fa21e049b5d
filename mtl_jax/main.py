"""Entry point: `python -m mtl_jax.main --config=configs/NAME.py[:smoke] --workdir=DIR [--config.key=value ...]`."""

import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mtl_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (`file.py` or `file.py:smoke`).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.jsonl; a rerun resumes.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-process run: host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process run: the number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process run: this process's id, 0..num_processes-1.")
_MULTIPROCESS = flags.DEFINE_bool("multiprocess", False, "Multi-process run with the settings JAX detects itself "
                                  "(TPU pod, SLURM); not needed with --coordinator_address.")
_PEER_TIMEOUT = flags.DEFINE_integer("peer_timeout", 30, "Multi-process run: seconds a process may show no sign of "
                                     "life before the others stop (mtl_jax/distributed.py).")
flags.mark_flags_as_required(["config", "workdir"])


def flag_error_line(error: Exception, argv: list[str]) -> str:
  """One readable line for a bad flag or config override (unknown field with a suggestion, bad value, bad file)."""
  text = str(error.args[0]) if isinstance(error, (AttributeError, KeyError)) and error.args else str(error)
  if isinstance(error, (AttributeError, KeyError)):
    hint = re.search(r'Did you mean "([\w.]+)" instead of "([\w.]+)"', text)
    key = hint.group(2) if hint else re.search(r"\w+", text).group(0)
    arg = next((a.split("=")[0] for a in argv if re.search(rf"\.{key}(=|$)", a.split("=")[0])), key)
    return f"{arg}: no such config field" + (f" (did you mean {hint.group(1)!r}?)" if hint else "")
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return " ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else text


def parse_flags(argv: list[str]) -> list[str]:
  """absl parsing, but a mistake in a flag or config override exits 2 with one line instead of a traceback."""
  try:
    rest = flags.FLAGS(argv)
    _CONFIG.value.is_locked  # noqa: B018 - a config file that fails to load raises only when first read
    return rest
  except Exception as e:  # noqa: BLE001 - everything raised while parsing flags comes from the command line
    print(f"error: {flag_error_line(e, argv)}", file=sys.stderr)
    sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
  from mtl_jax import distributed, train  # imported late so `--help` stays fast
  with cli.user_errors():
    watchdog = distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                      _MULTIPROCESS.value, _PEER_TIMEOUT.value)
    with distributed.stopped_by_lost_peers(watchdog):
      train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main, flags_parser=parse_flags)
