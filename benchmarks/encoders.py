"""Compile time and train-step time of every encoder family at one size (MiniLM's: 6 layers, hidden 384, 12 heads).

  python benchmarks/encoders.py [--batch 32 --length 128 --steps 10 --output benchmarks/results/encoders.json]

Each family's encoder, randomly initialised from a `transformers` config of that size (so its own options are the
family's defaults: RoBERTa's offset positions, DeBERTa-v3's relative attention with 256 buckets, ELECTRA's narrower
embeddings, ModernBERT's GeGLU of twice the intermediate width and vocabulary of 50,368), runs a jitted forward + backward + SGD update on random ids. Reported: the first call (trace + compile
+ one step) and the median of `--steps` further steps, in seconds.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import transformers  # noqa: E402

from benchmarks import common  # noqa: E402
from mtl_jax import encoders  # noqa: E402

SIZE = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
CONFIGS = {  # transformers configs of one size; their other fields are each family's defaults
    "bert": lambda: transformers.BertConfig(**SIZE),
    "roberta": lambda: transformers.RobertaConfig(max_position_embeddings=514, **SIZE),
    "distilbert": lambda: transformers.DistilBertConfig(dim=384, n_layers=6, n_heads=12, hidden_dim=1536),
    "electra": lambda: transformers.ElectraConfig(embedding_size=128, **SIZE),
    "deberta-v3": lambda: transformers.DebertaV2Config(
        relative_attention=True, position_buckets=256, max_relative_positions=-1, pos_att_type=["p2c", "c2p"],
        share_att_key=True, position_biased_input=False, norm_rel_ebd="layer_norm", type_vocab_size=0, **SIZE),
    "modernbert": lambda: transformers.ModernBertConfig(**SIZE),  # local layers: 64 positions each side
}


def measure(name: str, batch: int, length: int, steps: int) -> dict:
  hf = CONFIGS[name]().to_dict()
  _, config = encoders.from_hf(hf, name)
  model = encoders.Encoder(config)
  params = encoders.init_params(jax.random.key(0), config)
  ids = jax.random.randint(jax.random.key(1), (batch, length), 3, config.vocab_size)
  mask = jnp.ones_like(ids)

  @jax.jit
  def step(params, rng):
    loss = lambda p: jnp.mean(model.apply({"params": p}, ids, mask, deterministic=False, rngs={"dropout": rng}) ** 2)
    value, grads = jax.value_and_grad(loss)(params)
    return jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads), value

  start = time.perf_counter()
  params, value = step(params, jax.random.key(2))
  value.block_until_ready()
  first = time.perf_counter() - start
  times = []
  for i in range(steps):
    start = time.perf_counter()
    params, value = step(params, jax.random.key(3 + i))
    value.block_until_ready()
    times.append(time.perf_counter() - start)
  return {"first_call_s": round(first, 2), "step_s": round(statistics.median(times), 4),
          "params": sum(x.size for x in jax.tree.leaves(params))}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--families", default=",".join(CONFIGS))
  parser.add_argument("--output", default=os.path.join(common.REPO, "benchmarks", "results", "encoders.json"))
  args = parser.parse_args(argv)
  results = {name: measure(name, args.batch, args.length, args.steps) for name in args.families.split(",")}
  print(f"{'family':12s} {'params':>10s} {'first call (s)':>15s} {'step (s)':>9s}")
  for name, r in results.items():
    print(f"{name:12s} {r['params']:10,d} {r['first_call_s']:15.2f} {r['step_s']:9.4f}")
  report = {"batch": args.batch, "length": args.length, "steps": args.steps, "results": results,
            "machine": common.machine_info(), "versions": common.versions()}
  common.write_report(report, args.output)
  print(f"wrote {args.output}")


if __name__ == "__main__":
  main()
