"""Every encoder family against PyTorch `transformers`, without a hub: a small randomly initialised model of each
family, saved with `save_pretrained` (safetensors, as task checkpoints are: a head and the base model's prefix),
loaded by mtl_jax; the last hidden states must match on every real token of a padded batch of different lengths, and
packed (several texts per row) each text must keep the hidden states it has alone. Then each family trains a few
steps through the real entry point and predicts."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import flax.linen
import jax
import numpy as np
import pytest
import torch
import transformers
from runs import REPO, read_history

from mtl_jax import encoder as enc
from mtl_jax import encoders
from mtl_jax.encoders import Encoder, EncoderConfig
from mtl_jax.encoders.layers import dense_dot, dropout, gelu, text_positions
from mtl_jax.errors import UserError
from mtl_jax.predict import Predictor
from mtl_jax.tokenizer import FILES

# initializer_range 0.2, not 0.02: weights large enough that every term (e.g. DeBERTa's relative scores) shows
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, initializer_range=0.2)
# family -> (transformers config, model class as checkpoints are saved, whether it has token types)
FAMILIES = {
    "bert": (lambda v: transformers.BertConfig(vocab_size=v, max_position_embeddings=130, **SIZES),
             transformers.BertForMaskedLM, True),
    "roberta": (lambda v: transformers.RobertaConfig(vocab_size=v, max_position_embeddings=132, pad_token_id=1,
                                                     layer_norm_eps=1e-5, **SIZES),
                transformers.RobertaForMaskedLM, False),
    "xlm-roberta": (lambda v: transformers.XLMRobertaConfig(vocab_size=v, max_position_embeddings=132,
                                                            pad_token_id=1, **SIZES),
                    transformers.XLMRobertaForTokenClassification, False),
    "camembert": (lambda v: transformers.CamembertConfig(vocab_size=v, max_position_embeddings=132, pad_token_id=1,
                                                         **SIZES),
                  transformers.CamembertForSequenceClassification, False),
    "distilbert": (lambda v: transformers.DistilBertConfig(vocab_size=v, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                                           max_position_embeddings=130, initializer_range=0.2),
                   transformers.DistilBertForMaskedLM, False),
    "distilbert-sinusoidal": (lambda v: transformers.DistilBertConfig(
        vocab_size=v, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=130,
        sinusoidal_pos_embds=True, initializer_range=0.2), transformers.DistilBertModel, False),
    "electra": (lambda v: transformers.ElectraConfig(vocab_size=v, embedding_size=16, max_position_embeddings=130,
                                                     **SIZES),
                transformers.ElectraForPreTraining, True),
}
DEBERTA = dict(relative_attention=True, position_buckets=8, max_relative_positions=32, pos_att_type=["p2c", "c2p"],
               layer_norm_eps=1e-7, **SIZES)
FAMILIES.update({  # v3 as microsoft/deberta-v3-* (shared keys, no absolute positions, normed relative embeddings),
    # and a v2 with its own position projections, absolute positions, token types, embeddings of another width
    "deberta-v3": (lambda v: transformers.DebertaV2Config(
        vocab_size=v, max_position_embeddings=130, share_att_key=True, position_biased_input=False,
        norm_rel_ebd="layer_norm", type_vocab_size=0, **DEBERTA),
                   transformers.DebertaV2ForMaskedLM, False),
    "deberta-v2": (lambda v: transformers.DebertaV2Config(
        vocab_size=v, max_position_embeddings=130, share_att_key=False, position_biased_input=True, type_vocab_size=2,
        embedding_size=24, **DEBERTA),
                   transformers.DebertaV2ForSequenceClassification, True),
})
# ModernBERT as the hub has it (no biases) and with every bias; 3 layers, so local layers lie between global ones,
# with a window (3 positions each side) shorter than the batch; rotary bases of their own, so that a swap shows
MODERNBERT = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37,
                  initializer_range=0.2, global_attn_every_n_layers=2, local_attention=6, global_rope_theta=500.0,
                  local_rope_theta=30.0, pad_token_id=0, bos_token_id=1, cls_token_id=1, eos_token_id=2, sep_token_id=2)
FAMILIES.update({
    "modernbert": (lambda v: transformers.ModernBertConfig(vocab_size=v, **MODERNBERT),
                   transformers.ModernBertForMaskedLM, False),
    "modernbert-biases": (lambda v: transformers.ModernBertConfig(
        vocab_size=v, norm_bias=True, attention_bias=True, mlp_bias=True, **MODERNBERT),
                          transformers.ModernBertForSequenceClassification, False),
})
# families whose LayerNorms and biases transformers initialises to 1 and 0: drawn at random, so that each shows
RANDOM_NORMS = {"modernbert", "modernbert-biases"}
LENGTHS = (12, 9, 5, 1)  # the longest beyond position_buckets / 2, so DeBERTa's log buckets are used


def save_family(name: str, directory, vocab: int = 99, seed: int = 0):
  """A random model of the family saved to `directory`; returns the PyTorch base model (eval mode)."""
  make_config, model_class, _ = FAMILIES[name]
  torch.manual_seed(seed)
  hf = make_config(vocab)
  hf._attn_implementation = "eager"  # the reference: attention written out (ModernBERT: padded, not unpadded)
  model = model_class(hf).eval()
  if name in RANDOM_NORMS:
    with torch.no_grad():
      for param_name, param in model.named_parameters():
        if param.ndim == 1:
          param.normal_(1.0 if param_name.endswith("norm.weight") else 0.0, 0.2)
  model.save_pretrained(str(directory), safe_serialization=True)
  return model.base_model


def padded_batch(pad_id: int, vocab: int = 99, seed: int = 0):
  rng = np.random.default_rng(seed)
  ids = np.full((len(LENGTHS), max(LENGTHS)), pad_id, np.int64)
  mask = np.zeros_like(ids)
  for row, n in enumerate(LENGTHS):
    ids[row, :n] = rng.integers(3, vocab, n)
    mask[row, :n] = 1
  types = np.where(np.arange(ids.shape[1]) >= 4, 1, 0)[None, :] * mask
  return ids, mask, types


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_hidden_states_match_transformers(name, tmp_path):
  reference = save_family(name, tmp_path)
  config, params = enc.load_pretrained(str(tmp_path))
  ids, mask, types = padded_batch(reference.config.pad_token_id or 0)
  with_types = FAMILIES[name][2]
  with torch.no_grad():
    kwargs = {"token_type_ids": torch.tensor(types)} if with_types else {}
    want = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), **kwargs).last_hidden_state
  got = Encoder(config).apply({"params": params}, ids, mask, types if with_types else None)
  real = mask.astype(bool)
  print(f"{name}: max abs diff {np.abs(np.asarray(got)[real] - want.numpy()[real]).max():.1e}")
  np.testing.assert_allclose(np.asarray(got)[real], want.numpy()[real], atol=1e-4, rtol=0)
  assert config.family == {"distilbert-sinusoidal": "distilbert", "deberta-v3": "deberta-v2",
                           "modernbert-biases": "modernbert"}.get(name, name)


PACKING = ((0, 3), (1, 2))  # the rows of padded_batch that share a row when packed: 12 + 1 and 9 + 5 tokens


def packed_batch(ids, mask, types, pad_id: int):
  """padded_batch's texts packed as PACKING says (ids 1, 2 in the mask, each text with its token ids and types), and a
  row of padding only; returns the batch and where each text sits in it: (row, start) by its row in padded_batch."""
  length = max(sum(LENGTHS[i] for i in texts) for texts in PACKING)
  packed = [np.full((len(PACKING) + 1, length), pad_id, np.int64), np.zeros((len(PACKING) + 1, length), np.int64),
            np.zeros((len(PACKING) + 1, length), np.int64)]
  where = {}
  for row, texts in enumerate(PACKING):
    start = 0
    for text, i in enumerate(texts, 1):
      n = LENGTHS[i]
      for array, values in zip(packed, (ids[i, :n], text, types[i, :n])):
        array[row, start:start + n] = values
      where[i], start = (row, start), start + n
  return *packed, where


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_packed_texts_have_the_hidden_states_they_have_alone(name, tmp_path):
  """Several texts per row (ids 1, 2, ... in the attention mask): each attends only to itself and its positions
  restart, so every real token's hidden state is the one it has unpacked, one text per row. Both layouts run in one
  batch (the unpacked rows padded to the packed length), so each family runs once. The same in training with
  attention blocks."""
  reference = save_family(name, tmp_path)
  config, params = enc.load_pretrained(str(tmp_path))
  pad_id = reference.config.pad_token_id or 0
  ids, mask, types = padded_batch(pad_id)
  packed_ids, packed_mask, packed_types, where = packed_batch(ids, mask, types, pad_id)
  extra = ((0, 0), (0, packed_ids.shape[1] - ids.shape[1]))
  both = [np.concatenate([np.pad(unpacked, extra, constant_values=fill), packed]) for unpacked, packed, fill in
          ((ids, packed_ids, pad_id), (mask, packed_mask, 0), (types, packed_types, 0))]
  out = np.asarray(Encoder(config).apply({"params": params}, *both[:2], both[2] if FAMILIES[name][2] else None))
  assert np.isfinite(out).all()  # padding too, the row of padding only included
  alone = np.concatenate([out[i, :n] for i, n in enumerate(LENGTHS)])
  packed = out[len(LENGTHS):]
  got = np.concatenate([packed[where[i][0], where[i][1]:where[i][1] + n] for i, n in enumerate(LENGTHS)])
  # to float32 rounding: the same kernels, but where a text lies in its row changes how XLA:CPU's vectorised
  # reductions group its values (~1e-6 on an AVX-512 machine; test_model.assert_close). Rotary positions are relative, so
  # ModernBERT's restarting positions show only in rounding here: test_text_positions_restart_at_each_text checks them
  np.testing.assert_allclose(got, alone, atol=1e-5, rtol=1e-5)
  # Training with attention blocks (`Encoder.blocks`, dropout off): rows of 32 holding the texts in blocks of 16 (as
  # fold_rows lays out two packed rows of 16) attend within blocks of 16, and a row where a text runs across position
  # 16 makes the whole batch attend over whole rows; either way every text keeps its hidden states.
  config = dataclasses.replace(config, dropout_rate=0.0, attention_dropout_rate=0.0)
  for starts in (((0, 0), (1, 0), (0, 16), (1, 16)), ((0, 0), (1, 0), (0, 12), (1, 16))):  # (row, start) per text
    rows = [np.full((2, 32), pad_id, np.int64), np.zeros((2, 32), np.int64), np.zeros((2, 32), np.int64)]
    for i, (row, start) in enumerate(starts):
      for array, values in zip(rows, (ids[i], mask[i] * (1 + (start > 0)), types[i])):
        array[row, start:start + LENGTHS[i]] = values[:LENGTHS[i]]
    out = Encoder(config, blocks=(8, 16)).apply({"params": params}, *rows[:2], rows[2] if FAMILIES[name][2] else None,
                                                 deterministic=False, rngs={"dropout": jax.random.key(0)})
    got = np.concatenate([np.asarray(out)[row, start:start + LENGTHS[i]] for i, (row, start) in enumerate(starts)])
    np.testing.assert_allclose(got, alone, atol=2e-5)


def test_text_positions_restart_at_each_text():
  def by_loop(mask):
    positions = np.zeros_like(mask)
    for row, col in np.ndindex(mask.shape):
      if mask[row, col] and col and mask[row, col - 1] == mask[row, col]:
        positions[row, col] = positions[row, col - 1] + 1
    return positions
  masks = np.array([[1, 1, 1, 1, 1, 1, 0, 0],  # one text, as unpacked rows have
                    [1, 1, 1, 2, 2, 3, 0, 0],  # three texts
                    [0, 0, 0, 0, 0, 0, 0, 0],  # padding only
                    [1, 1, 1, 1, 1, 1, 1, 1],  # one text, no padding
                    [1, 2, 3, 4, 4, 4, 5, 5],  # texts of one token, no padding
                    [1, 1, 2, 2, 2, 2, 2, 0]])
  got = np.asarray(text_positions(masks))
  assert got.dtype == np.int32
  np.testing.assert_array_equal(got, by_loop(masks))
  np.testing.assert_array_equal(got[1], [0, 1, 2, 0, 1, 0, 0, 0])


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_drops_at_its_rate_and_keeps_the_expectation(rate):
  x = np.random.default_rng(0).normal(size=(8, 33, 126)).astype(np.float32)  # a last axis not a multiple of 4
  got = np.asarray(dropout(x, rate, jax.random.key(1)))
  assert got.shape == x.shape and got.dtype == x.dtype
  dropped = round(rate * 256) / 256  # the rate, to 8 bits
  kept = got != 0
  sigma = np.sqrt(dropped * (1 - dropped) / x.size)
  assert abs((1 - kept.mean()) - dropped) < 5 * sigma
  np.testing.assert_allclose(got[kept], x[kept] / (1 - dropped), rtol=1e-6)  # kept elements scaled: E[out] = x
  # the four elements one 32-bit draw decides, and neighbouring rows, are independent of each other
  for a, b in ((kept[..., 0::4], kept[..., 1::4]), (kept[..., 2::4], kept[..., 3::4]), (kept[:, :-1], kept[:, 1:])):
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 5 / np.sqrt(a.size)
  again, other = (np.asarray(dropout(x, rate, jax.random.key(k))) != 0 for k in (1, 2))
  np.testing.assert_array_equal(again, kept)  # a function of the key
  assert (other != kept).mean() > dropped * (1 - dropped)  # another key, another mask


def test_gelu_and_its_gradient_match_torch_s_exact_gelu():
  x = np.concatenate([np.linspace(-12, 12, 4001), np.random.default_rng(0).normal(0, 3, 4000)]).astype(np.float32)
  tx = torch.tensor(x, requires_grad=True)
  want = torch.nn.functional.gelu(tx)
  want.sum().backward()
  grad = jax.grad(lambda v: gelu(v).sum())(x)
  np.testing.assert_allclose(np.asarray(gelu(x)), want.detach().numpy(), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(grad), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_a_dense_layer_s_output_and_gradients_match_torch_linear():
  rng = np.random.default_rng(0)
  x, kernel, bias, weight = (rng.normal(size=s).astype(np.float32) for s in ((2, 5, 7), (7, 3), (3,), (2, 5, 3)))
  dense = flax.linen.Dense(3, dot_general=dense_dot)
  params = {"params": {"kernel": kernel, "bias": bias}}
  loss = lambda p, x: (dense.apply(p, x) * weight).sum()
  tx, linear = torch.tensor(x, requires_grad=True), torch.nn.Linear(7, 3)
  with torch.no_grad():
    linear.weight.copy_(torch.tensor(kernel.T))
    linear.bias.copy_(torch.tensor(bias))
  want = linear(tx)
  (want * torch.tensor(weight)).sum().backward()
  grads, dx = jax.grad(loss, argnums=(0, 1))(params, x)
  np.testing.assert_allclose(np.asarray(dense.apply(params, x)), want.detach().numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dx), tx.grad.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(grads["params"]["kernel"]), linear.weight.grad.numpy().T, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(grads["params"]["bias"]), linear.bias.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type", ["mpnet", "gpt2", None])
def test_an_unsupported_family_is_refused_by_name(model_type, tmp_path):
  save_family("bert", tmp_path)
  hf = json.loads((tmp_path / "config.json").read_text())
  hf.pop("model_type")
  if model_type:
    hf["model_type"] = model_type
  (tmp_path / "config.json").write_text(json.dumps(hf))
  found = repr(model_type) if model_type else "no model_type"
  with pytest.raises(UserError, match=rf"config.json: field 'model_type': found {found}; supported encoder families: "
                                      r"bert, camembert, deberta-v2, distilbert, electra, modernbert, roberta, "
                                      r"xlm-roberta$"):
    enc.load_pretrained(str(tmp_path))


def test_a_family_s_weights_under_another_family_s_name_are_refused(tmp_path):
  save_family("distilbert", tmp_path)
  hf = json.loads((tmp_path / "config.json").read_text())
  (tmp_path / "config.json").write_text(json.dumps({**hf, "model_type": "roberta"}))
  with pytest.raises(UserError, match="config.json: missing field 'hidden_size' \\(expected a roberta config\\)"):
    enc.load_pretrained(str(tmp_path))


# family -> the compute settings its run also exercises (the layers that differ from BERT's in bfloat16 with remat)
SETTINGS = {"roberta": [], "distilbert": [], "electra": ["--config.encoder.remat=True"],
            "deberta-v3": ["--config.encoder.dtype=bfloat16", "--config.encoder.remat=True"],
            "modernbert": ["--config.encoder.dtype=bfloat16", "--config.encoder.remat=True"]}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_each_family_trains_through_the_entry_point_and_predicts(name, table, tmp_path):
  """`python -m mtl_jax.main --config.encoder.name=<a directory transformers saved>`: the packaged tokenizer beside a
  small model of the family (its vocabulary of 30522 ids), DeBERTa and ModernBERT in bfloat16 with remat; then a
  prediction from its checkpoint."""
  model_dir = tmp_path / "encoder"
  save_family(name, model_dir, vocab=30522)
  minilm = enc.resolve_encoder_dir(enc.DEFAULT_PRETRAINED)
  for file in FILES:
    if os.path.exists(os.path.join(minilm, file)):
      shutil.copy(os.path.join(minilm, file), model_dir / file)
  workdir = str(tmp_path / "run")
  subprocess.run([sys.executable, "-m", "mtl_jax.main", "--config=configs/three_task.py:smoke", f"--workdir={workdir}",
                  f"--config.encoder.name={model_dir}", f"--config.data.train={table}", "--config.data.validation=0.25",
                  "--config.train.steps=4", "--config.train.eval_every=4", *SETTINGS[name]], cwd=REPO, check=True,
                 capture_output=True)
  assert np.isfinite(read_history(workdir)[-1]["eval/mean/loss"])
  predictor = Predictor.load(os.path.join(workdir, "best"))
  assert predictor.model.encoder.config.family == name.replace("v3", "v2")
  out = predictor.predict(["app login awful broken"])
  assert set(out[0]) == {"sentiment", "urgency", "topic"}
  shapes = jax.tree.map(np.shape, predictor.params["encoder"])
  assert ("project" in shapes["embeddings"]) == (name == "electra")
  assert ("token_type" in shapes["embeddings"]) == (name in ("roberta", "electra"))
  assert ("rel_embeddings" in shapes) == (name == "deberta-v3")


def family_shapes():
  """(name, EncoderConfig, parameter shapes) of every family's test config."""
  for name, (make_config, _, _) in FAMILIES.items():
    _, config = encoders.from_hf(make_config(99).to_dict(), "config.json")
    yield name, config, jax.eval_shape(lambda c=config: encoders.init_params(jax.random.key(0), c))


def test_every_family_s_config_reads_back_from_checkpoint_meta_as_a_resumed_run_builds_it():
  """Checkpoint meta is JSON: a resumed run compares the config it builds with the one read back (tuples come back as
  lists), so every family's fields must survive the round trip or a resume is refused as another run."""
  for name, config, _ in family_shapes():
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved == config.to_dict() and EncoderConfig.from_dict(saved) == config, name


def test_every_family_s_matrices_are_covered_by_the_sharding_rules():
  from mtl_jax.sharding import DEFAULT_RULES, path_name, spec_for
  for name, _, shapes in family_shapes():
    for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
      if len(leaf.shape) == 2 and "norm" not in path_name(path):
        assert spec_for(f"encoder/{path_name(path)}", DEFAULT_RULES) != jax.sharding.PartitionSpec(), (name, path)


def test_the_memory_estimate_counts_every_family_s_parameters():
  from mtl_jax.resources import encoder_params
  for name, config, shapes in family_shapes():
    assert encoder_params(config) == sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)), name


def test_deberta_s_convolution_layer_is_refused_by_name(tmp_path):
  save_family("deberta-v2", tmp_path)
  hf = json.loads((tmp_path / "config.json").read_text())
  (tmp_path / "config.json").write_text(json.dumps({**hf, "conv_kernel_size": 3}))
  with pytest.raises(UserError, match="config.json: field 'conv_kernel_size': DeBERTa's convolution layer is not "
                                      "supported \\(expected 0, found 3\\)"):
    enc.load_pretrained(str(tmp_path))


# answerdotai/ModernBERT-base's config.json as the hub has it (the fields that describe the architecture: the names of
# transformers 4.48, which transformers 5 still reads), and its base model's parameter count in transformers
MODERNBERT_BASE = {"model_type": "modernbert", "vocab_size": 50368, "hidden_size": 768, "num_hidden_layers": 22,
                   "num_attention_heads": 12, "intermediate_size": 1152, "max_position_embeddings": 8192,
                   "hidden_activation": "gelu", "norm_eps": 1e-5, "norm_bias": False, "attention_bias": False,
                   "mlp_bias": False, "global_attn_every_n_layers": 3, "local_attention": 128,
                   "global_rope_theta": 160000.0, "local_rope_theta": 10000.0, "position_embedding_type": "absolute"}


def test_modernbert_base_s_hub_config_reads_as_transformers_reads_it():
  from mtl_jax.resources import encoder_params
  _, config = encoders.from_hf(MODERNBERT_BASE, "config.json")
  assert (config.global_every, config.local_window, config.rope_theta, config.local_rope_theta) == (3, 128, 160000, 1e4)
  assert encoder_params(config) == 149_014_272  # sum(p.numel() for p in transformers.ModernBertModel(...).parameters())


@pytest.mark.parametrize("field, value, message", [
    ("layer_types", ["full_attention", "full_attention", "sliding_attention"],
     "field 'layer_types': expected every n-th layer 'full_attention' from the first"),
    ("rope_parameters", {"full_attention": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}},
     "field 'rope_parameters': full_attention: expected rope_type 'default', found 'yarn'"),
    ("rope_scaling", {"rope_type": "linear", "factor": 2.0}, "field 'rope_scaling': scaled rotary positions are not"),
    ("global_attn_every_n_layers", 0, "field 'global_attn_every_n_layers': expected an integer >= 1, found 0"),
    ("global_rope_theta", None, "field 'global_rope_theta': expected a rotary base > 0, found None"),
])
def test_modernbert_s_unsupported_layouts_and_rotary_scalings_are_refused_by_name(field, value, message):
  with pytest.raises(UserError, match=f"config.json: {re.escape(message)}"):
    encoders.from_hf({**MODERNBERT_BASE, "num_hidden_layers": 3, field: value}, "config.json")
