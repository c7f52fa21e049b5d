"""Entry point: `python -m mtl_jax.main --config=configs/NAME.py[:smoke] --workdir=DIR [--config.key=value ...]`."""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mtl_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (`file.py` or `file.py:smoke`).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.jsonl; a rerun resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
  from mtl_jax import train  # imported late so `--help` stays fast
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" banner
  app.run(main)
