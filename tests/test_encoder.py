"""The Flax encoder against PyTorch `transformers.BertModel` outputs (tests/golden/, made by make_encoder_golden.py)."""

import json
import os

import jax
import numpy as np
import pytest
from transformers import AutoTokenizer

from mtl_jax import encoder as enc
from mtl_jax.encoders import Encoder, bert, init_params, weights
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
