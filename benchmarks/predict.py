"""Prediction throughput: mtl_jax's `Predictor` against the PyTorch reference in eval mode under
`torch.inference_mode`, on the same texts, with the same weights and batch size.

  python benchmarks/predict.py                        # MiniLM, every variant; about a minute on 2 CPU cores
  python benchmarks/predict.py --encoder=random-tiny --windows=2 --steps=2 --batch_size=4   # seconds

Texts as in benchmarks/throughput.py (CoNLL-2003 sentences and TweetEval tweets, half each); a window predicts
`--steps` x `--batch_size` texts, the same texts in every window. Both sides return the same thing: per text and
task, the label and the probability of every class (Predictor.predict's format), so tokenisation, batching, the
forward pass and building the results are all timed. After `--warmup` untimed windows per variant (JAX compiles
there), `--windows` timed rounds each run one window of every variant, in a rotating order; a variant's median
window gives its figures. `compiles`: XLA compilations in the warm-up (one per batch shape: the full batch and the
last one's) / in the timed windows.

Variants:
  mtl_jax         Predictor.predict(texts, batch_size): tokenise, pack the texts into rows of the longest length
                  bucket (first-fit decreasing, as many tokens a batch as batch_size texts of the shortest bucket:
                  `input_pipeline.eval_batches`), the jitted forward, results per task;
  pytorch         the tokenizer on all texts (cut to the largest bucket), batches in input order padded to their
                  longest text by tokenizer.pad, BertModel + mean pooling + grouped nn.Linear, softmax per task;
  pytorch_sorted  the same, with the texts sorted by length first (the least padding without packing).

When PyTorch runs, mtl_jax's encoder and head take the PyTorch model's weights (for the packaged MiniLM they are
the same file anyway), so `max_prob_diff` checks that both compute the same probabilities. The Predictor is built
from its pieces (no checkpoint; Predictor.load is a one-off and not timed).
"""

import argparse
import os
import sys

if __package__ in (None, ""):  # run as `python benchmarks/predict.py`: import from the repository root
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from mtl_jax.encoder import tokenizer_dir  # noqa: E402
from mtl_jax.encoders import bert, weights  # noqa: E402
from mtl_jax.input_pipeline import eval_batches, eval_rows  # noqa: E402
from mtl_jax.predict import Predictor  # noqa: E402
from mtl_jax.tasks import Layout  # noqa: E402

VARIANTS = ("mtl_jax", "pytorch", "pytorch_sorted")
BASELINE = "mtl_jax"
DEFAULT_OUTPUT = os.path.join(common.REPO, "benchmarks", "results", "predict.json")


def result_rows(layout: Layout, probs: np.ndarray) -> list[dict]:
  """[N, sum K] probabilities -> Predictor.predict's classification results, one dict per text."""
  rows = []
  for p in probs:
    row = {}
    for t, task in enumerate(layout.tasks):
      q = p[layout.offsets[t]:layout.offsets[t] + task.num_classes]
      row[task.name] = {"label": task.labels[int(np.argmax(q))],
                        "probs": {name: round(float(x), 6) for name, x in zip(task.labels, q)}}
    rows.append(row)
  return rows


def hugging_face_tokenizer(config):
  """transformers' AutoTokenizer for the encoder's tokenizer files, the ones mtl_jax reads."""
  from transformers import AutoTokenizer
  return AutoTokenizer.from_pretrained(tokenizer_dir(config.encoder))


def torch_predict(model, tokenizer, texts: list[str], batch_size: int, layout: Layout, max_length: int,
                  sort: bool) -> list[dict]:
  """The PyTorch reference's predictions: one tokenisation, batches (input order, or sorted by length) padded to
  their longest text, the forward pass under inference_mode, softmax within each task's group."""
  import torch
  ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
  order = np.argsort([len(x) for x in ids], kind="stable") if sort else np.arange(len(texts))
  probs = np.zeros((len(texts), layout.total("classification")), np.float32)
  for start in range(0, len(texts), batch_size):
    idx = order[start:start + batch_size]
    batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
    with torch.inference_mode():
      logits = common.torch_logits(model, batch["input_ids"], batch["attention_mask"], 0.0, train=False)
      groups = logits.split(list(layout.group_sizes), dim=-1)
      probs[idx] = torch.cat([torch.softmax(g, dim=-1) for g in groups], dim=-1).numpy()
  return result_rows(layout, probs)


def torch_processed(lengths: np.ndarray, batch_size: int, sort: bool) -> int:
  """Positions the PyTorch reference computes: each batch's rows times its longest text."""
  order = np.argsort(lengths, kind="stable") if sort else np.arange(len(lengths))
  return sum(len(c) * int(lengths[c].max()) for c in np.split(order, range(batch_size, len(order), batch_size)))


def predictor_processed(lengths: np.ndarray, batch_size: int, buckets) -> int:
  """Positions Predictor computes: its batches' packed rows of the longest bucket."""
  return sum(b.rows * b.length for b in eval_batches(lengths, eval_rows(batch_size, buckets), max(buckets)))


def jax_params_from_torch(model, torch_model) -> dict:
  """mtl_jax params holding the PyTorch reference's weights (encoder through BERT's names, the head transposed)."""
  tensors = {k: v.detach().numpy() for k, v in torch_model["bert"].state_dict().items()}
  head = torch_model["head"]
  params = jax.device_get(jax.jit(model.init)(jax.random.key(0)))
  params["encoder"] = weights.to_tree(tensors, bert.hf_name_to_path, "bert", "the PyTorch reference")
  params["heads"]["classification"] = {"kernel": head.weight.detach().numpy().T.copy(),
                                       "bias": head.bias.detach().numpy().copy()}
  return jax.device_put(params)


def predictor_params(model, pretrained: dict | None, torch_model, seed: int) -> dict:
  """The PyTorch reference's weights when it runs (so both sides must agree), else fresh heads and the pretrained
  encoder."""
  if torch_model is not None:
    return jax_params_from_torch(model, torch_model)
  params = jax.jit(model.init)(jax.random.key(seed))
  if pretrained is not None:
    params["encoder"] = jax.device_put(pretrained)
  return params


def keeping(predict_fn, out: dict, name: str):
  """A window: `predict_fn()`, its predictions kept in out[name] (the last window's are compared)."""
  def window():
    out[name] = predict_fn()
  return window


def measure(calls: dict, windows: int, warmup: int) -> tuple[dict, dict]:
  """Warm-up windows per variant, then interleaved timed rounds: ({name: (window seconds, XLA compilations in
  them, warm-up seconds, XLA compilations in the warm-up, their seconds)}, {name: last window's predictions})."""
  predictions, windows_of, warmed = {}, {}, {}
  for name, call in calls.items():
    print(f"warming up {name} ...", file=sys.stderr, flush=True)
    windows_of[name] = keeping(call, predictions, name)
    warmed[name] = common.timed(common.repeated(windows_of[name], warmup))
  print(f"{windows} timed rounds of {len(calls)} windows ...", file=sys.stderr, flush=True)
  timed = common.interleaved_windows(windows_of, windows)
  return {name: (*timed[name], *warmed[name]) for name in calls}, predictions


def max_prob_diff(a: list[dict], b: list[dict]) -> float:
  return max(abs(x[t]["probs"][c] - y[t]["probs"][c]) for x, y in zip(a, b) for t in x for c in x[t]["probs"])


def run(args) -> tuple[dict, str]:
  """Measures every variant in `args.variants`; returns the report (also written to `args.output`) and the table."""
  names = [v for v in args.variants.split(",") if v]
  if unknown := [v for v in names if v not in VARIANTS]:
    raise SystemExit(f"error: --variants: unknown {unknown}; expected some of {list(VARIANTS)}")
  use_torch = any(n.startswith("pytorch") for n in names)
  if use_torch and not common.torch_available():
    raise SystemExit("error: the pytorch variants need torch: pip install torch==2.13.0")
  if args.warmup < 1:
    raise SystemExit("error: --warmup: expected >= 1 (JAX compiles in the warm-up)")
  common.compile_stats()  # starts counting
  report = {"benchmark": "predict", "machine": common.machine_info(), "versions": common.versions()}

  config = common.base_config(args.encoder, args.dtype, args.batch_size, args.seed)
  model, pretrained, tokenizer, weights_dir = common.build_model(config)
  buckets, bs = tuple(config.data.length_buckets), args.batch_size
  texts = common.load_texts(args.data_root, args.steps * bs, args.seed)
  lengths = common.encode(texts, np.zeros((len(texts), 1), np.int32), tokenizer, max(buckets)).lengths
  threads = common.set_torch_threads(args.threads) if use_torch else None
  torch_model = common.torch_reference(model.encoder.config, weights_dir, model.layout.total("classification"),
                                       args.torch_attention, args.seed).eval() if use_torch else None
  predictor = Predictor(model, predictor_params(model, pretrained, torch_model, args.seed), tokenizer, buckets, step=0)
  calls = {"mtl_jax": lambda: predictor.predict(texts, bs)}
  processed = {"mtl_jax": predictor_processed(lengths, bs, predictor.length_buckets)}
  hf_tokenizer = hugging_face_tokenizer(config) if use_torch else None  # what a transformers user would load
  for name, sort in (("pytorch", False), ("pytorch_sorted", True)):
    calls[name] = lambda sort=sort: torch_predict(torch_model, hf_tokenizer, texts, bs, model.layout, max(buckets),
                                                  sort)
    processed[name] = torch_processed(lengths, bs, sort)
  report["settings"] = {**vars(args), "num_texts": len(texts), "length_buckets": list(buckets),
                        "group_sizes": list(model.layout.group_sizes), "pooling": config.encoder.pooling,
                        "encoder_config": model.encoder.config.to_dict(),
                        "text_tokens": {"mean": float(lengths.mean()), "max": int(lengths.max())},
                        "jax_cpu_threads": "XLA's default thread pool", "torch_threads": threads}

  measured, predictions = measure({name: calls[name] for name in names}, args.windows, args.warmup)
  report["results"] = {}
  for name, (seconds, compiles_timed, warmup_s, compiles, compile_s) in measured.items():
    jax_side = name == "mtl_jax"
    report["results"][name] = common.summarize(
        seconds, len(texts), int(lengths.sum()), processed[name], compiles=compiles if jax_side else None,
        compiles_timed=compiles_timed if jax_side else None, compile_s=compile_s if jax_side else None,
        warmup_s=warmup_s)
    if not jax_side and "mtl_jax" in predictions:
      report["results"][name]["max_prob_diff"] = max_prob_diff(predictions["mtl_jax"], predictions[name])
  return report, common.finish(report, args.output, BASELINE)


def parse_args(argv=None) -> argparse.Namespace:
  parser = common.argument_parser(__doc__, VARIANTS, DEFAULT_OUTPUT)
  add = parser.add_argument
  add("--steps", type=int, default=16, help="batches per window (a window predicts steps x batch_size texts)")
  add("--warmup", type=int, default=1, help="untimed windows first (compiles)")
  return parser.parse_args(argv)


if __name__ == "__main__":
  common.main(parse_args, run)
