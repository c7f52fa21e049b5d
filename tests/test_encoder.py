"""The Flax encoder against PyTorch `transformers.BertModel` outputs (tests/golden/, made by make_encoder_golden.py)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transformers import AutoTokenizer

from mtl_jax import encoder as enc
from mtl_jax.encoders import Encoder, bert, init_params, weights
from mtl_jax.encoders.layers import _block_probs, _blocks, attention_bias, block_index, blocked_attention
from mtl_jax.errors import UserError
from mtl_jax.heads import pool

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "minilm_hidden.npz")


@pytest.fixture(scope="module")
def minilm():
  directory = enc.resolve_encoder_dir(enc.DEFAULT_PRETRAINED)
  config, params = enc.load_pretrained(directory)
  return directory, config, params


@pytest.fixture(scope="module")
def golden():
  return dict(np.load(GOLDEN))


def test_tokenizer_matches_golden_ids(minilm, golden):
  tokenizer = AutoTokenizer.from_pretrained(minilm[0])
  ids = tokenizer(list(golden["sentences"]), padding=True, truncation=True, max_length=48)["input_ids"]
  np.testing.assert_array_equal(np.asarray(ids), golden["input_ids"])


def test_hidden_states_match_pytorch(minilm, golden):
  _, config, params = minilm
  out, state = Encoder(config).apply({"params": params}, golden["input_ids"], golden["attention_mask"],
                                         golden["token_type_ids"], capture_intermediates=True)
  mask = golden["attention_mask"].astype(bool)
  # Padded positions are not compared: their values depend on the attention kernel, and nothing reads them.
  np.testing.assert_allclose(np.asarray(out)[mask], golden["last_hidden_state"][mask], atol=1e-4, rtol=0)
  inter = state["intermediates"]
  for layer, reference in zip(golden["hidden_state_layers"], golden["hidden_states"]):
    ours = inter["embeddings"]["__call__"][0] if layer == 0 else inter[f"layer_{layer - 1}"]["__call__"][0]
    np.testing.assert_allclose(np.asarray(ours)[mask], reference[mask], atol=1e-4, rtol=0)
  pooled = pool(out, golden["attention_mask"], "mean")
  np.testing.assert_allclose(np.asarray(pooled), golden["mean_pooled"], atol=1e-4, rtol=0)


def test_hf_names_map_to_our_tree():
  assert bert.hf_name_to_path("encoder.layer.3.attention.self.query.weight") == ("layer_3", "query", "kernel")
  assert bert.hf_name_to_path("bert.embeddings.LayerNorm.gamma") == ("embeddings", "norm", "scale")
  assert bert.hf_name_to_path("encoder.layer.0.output.LayerNorm.bias") == ("layer_0", "output_norm", "bias")
  assert bert.hf_name_to_path("pooler.dense.weight") is None


def to_tree(tensors):
  return weights.to_tree(tensors, bert.hf_name_to_path, "bert", "model.safetensors")


def test_linear_weights_are_transposed():
  w = np.arange(6, dtype=np.float32).reshape(2, 3)  # torch Linear: [out, in]
  tree = to_tree({"encoder.layer.0.intermediate.dense.weight": w})
  np.testing.assert_array_equal(tree["layer_0"]["intermediate"]["kernel"], w.T)


def test_unknown_tensor_is_an_error():
  with pytest.raises(UserError, match="unexpected tensors for a bert encoder.*encoder.layer.0.crossattention"):
    to_tree({"encoder.layer.0.crossattention.self.query.weight": np.zeros((2, 2))})


def _copy_minilm(directory, tmp_path, drop=None):
  from safetensors.numpy import load_file, save_file
  tensors = load_file(os.path.join(directory, "model.safetensors"))
  if drop:
    del tensors[drop]
  save_file(tensors, str(tmp_path / "model.safetensors"))
  (tmp_path / "config.json").write_text(open(os.path.join(directory, "config.json")).read())
  return str(tmp_path)


def test_local_directory_loads_like_the_package(minilm, tmp_path):
  config, params = enc.load_pretrained(_copy_minilm(minilm[0], tmp_path))
  assert config == minilm[1]
  jax.tree.map(np.testing.assert_array_equal, params, minilm[2])


def test_missing_weight_is_named(minilm, tmp_path):
  directory = _copy_minilm(minilm[0], tmp_path, drop="encoder.layer.2.attention.self.key.weight")
  with pytest.raises(UserError, match="missing weights for layer_2/key/kernel"):
    enc.load_pretrained(directory)


def test_directory_without_weights_is_named(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
  with pytest.raises(UserError, match="model.safetensors: file not found"):
    enc.load_pretrained(str(tmp_path))


def test_unsupported_position_embeddings_rejected():
  with pytest.raises(UserError, match="position_embedding_type"):
    bert.config_from_hf({"position_embedding_type": "relative_key"}, "config.json")


@pytest.mark.parametrize("preset", sorted(enc.RANDOM_PRESETS))
def test_random_presets_shapes(preset):
  config = enc.random_config(preset)
  shapes = jax.eval_shape(lambda: init_params(jax.random.key(0), config))
  assert shapes["layer_0"]["query"]["kernel"].shape == (config.hidden_size, config.hidden_size)
  assert len([k for k in shapes if k.startswith("layer_")]) == config.num_layers


def test_bfloat16_compute_stays_close_to_float32(minilm, golden):
  _, config, params = minilm
  out = Encoder(config, jax.numpy.bfloat16).apply({"params": params}, golden["input_ids"],
                                                      golden["attention_mask"])
  assert out.dtype == jax.numpy.bfloat16
  pooled = np.asarray(pool(out.astype(np.float32), golden["attention_mask"], "mean"))
  cosine = (pooled * golden["mean_pooled"]).sum(1) / np.linalg.norm(pooled, axis=1) / np.linalg.norm(
      golden["mean_pooled"], axis=1)
  assert cosine.min() > 0.99


def test_remat_gives_the_same_gradients():
  config = enc.random_config("random-tiny")
  ids = jax.random.randint(jax.random.key(1), (2, 8), 0, config.vocab_size)
  params = init_params(jax.random.key(0), config)
  grads = [jax.grad(lambda p: Encoder(config, remat=r).apply({"params": p}, ids, np.ones((2, 8))).sum())(params)
           for r in (False, True)]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), *grads)


def test_hub_id_without_a_hub_is_a_clear_error(monkeypatch):
  import huggingface_hub
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import; no network in tests
  with pytest.raises(UserError, match=r"encoder 'someorg/some-model': not a local directory, and the hub download"):
    enc.resolve_encoder_dir("someorg/some-model")
  with pytest.raises(UserError, match=r"directory not found"):
    enc.resolve_encoder_dir("./no/such/dir")


def test_block_index_is_the_shortest_block_length_no_text_runs_across():
  def by_loop(mask, blocks):
    for i, size in enumerate(blocks):
      if all(not (row[b - 1] == row[b] != 0) for row in mask for b in range(size, len(row), size)):
        return i
    return len(blocks)
  rng, seen = np.random.default_rng(0), set()
  for _ in range(300):
    mask, size = np.zeros((2, 32), np.int64), int(rng.choice([4, 8, 16, 32]))
    for row in mask:  # texts laid out within blocks of `size`, numbered along the row, sometimes padding after one
      text = 1
      for start in range(0, 32, size):
        at = start
        while at < start + size:
          n = int(rng.integers(1, start + size - at + 1))
          row[at:at + n], at, text = text, at + n + int(rng.integers(0, 2)), text + 1
    got = int(block_index(mask, (4, 8, 16)))
    assert got == by_loop(mask, (4, 8, 16))
    seen.add(got)
  assert seen == {0, 1, 2, 3}


def test_blocked_attention_matches_whole_row_attention_and_its_gradients_match_autodiff():
  """`blocked_attention` (its own backward pass) against attention over whole rows (no dropout), and its gradients
  against JAX's autodiff of the same blocks' forward pass, with and without dropout, at every block length."""
  rng, sizes, root = np.random.default_rng(0), (4, 8, 16), 2.0
  q, k, v, cotangent = (jnp.asarray(rng.normal(size=(2, 16, 2, 4)), jnp.float32) for _ in range(4))
  mask = np.array([[1, 1, 1, 0, 2, 2, 3, 0, 4, 4, 4, 4, 5, 0, 0, 0], [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]])
  bias = tuple(attention_bias(mask, jnp.float32, n) for n in sizes)
  whole = jax.nn.dot_product_attention(q, k, v, bias=attention_bias(mask, jnp.float32), scale=1 / root)
  key = jax.random.key(0)
  for block, size in enumerate(sizes):
    for rate in (0.0, 0.1):
      def blocked(q, k, v):
        return (blocked_attention(q, k, v, bias, jnp.asarray(block), root, rate, key if rate else None)
                * cotangent).sum()

      def autodiff(q, k, v):
        probs, keep, scale = _block_probs(_blocks(q, size), _blocks(k, size), bias[block], root, rate, key)
        dropped = probs if keep is None else jnp.where(keep, probs * scale, 0)
        return (jnp.einsum("bhnqk,bnkhd->bnqhd", dropped, _blocks(v, size)).reshape(q.shape) * cotangent).sum()
      if not rate:  # texts within blocks of 4: every block length gives the texts the whole rows' attention
        out = blocked_attention(q, k, v, bias, jnp.asarray(block), root, rate)
        np.testing.assert_allclose(np.asarray(out)[mask > 0], np.asarray(whole)[mask > 0], atol=1e-5)
      got, want = jax.value_and_grad(blocked, (0, 1, 2))(q, k, v), jax.value_and_grad(autodiff, (0, 1, 2))(q, k, v)
      np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
      for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(g, w, atol=1e-5)
