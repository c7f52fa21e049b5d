"""FastTokenizer (tokenizers alone) against transformers' AutoTokenizer on the same tokenizer files."""

import json
import os
import subprocess
import sys

import pytest
from runs import trained_tokenizer
from transformers import AutoTokenizer

from mtl_jax.encoder import DEFAULT_PRETRAINED, resolve_encoder_dir
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import tokenize_pairs
from mtl_jax.tokenizer import FastTokenizer, load_tokenizer

TEXTS = ["my parcel never arrived and I need it today", "Héllo WORLD, naïve café!", "東京 is big 🙂 ok",
         "  spaces\tand\nnewlines  ", "[MASK] [CLS] literal specials", "don't re-do U.S.A.-style e-mails",
         "many words " * 100, "supercalifragilisticexpialidocious antidisestablishmentarianism", ""]


@pytest.fixture(scope="module")
def directory():
  return resolve_encoder_dir(DEFAULT_PRETRAINED)


def test_same_ids_lengths_and_special_tokens_as_transformers(directory):
  ours, reference = FastTokenizer(directory), AutoTokenizer.from_pretrained(directory)
  for add in (True, False):
    assert ours(TEXTS, add_special_tokens=add)["input_ids"] == reference(TEXTS, add_special_tokens=add)["input_ids"]
    assert ours(TEXTS[1], add_special_tokens=add)["input_ids"] == reference(TEXTS[1], add_special_tokens=add)[
        "input_ids"]
  assert len(ours) == len(reference)
  special = lambda tok: (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id)
  assert special(ours) == special(reference)
  assert len(ours(TEXTS[6])["input_ids"]) > 128  # the 128 truncation and padding in this tokenizer.json are off


def test_saved_files_load_again(directory, tmp_path):
  FastTokenizer(directory).save_pretrained(str(tmp_path))
  assert load_tokenizer(str(tmp_path))(TEXTS)["input_ids"] == AutoTokenizer.from_pretrained(directory)(TEXTS)[
      "input_ids"]


def test_a_broken_tokenizer_json_is_a_user_error(tmp_path):
  (tmp_path / "tokenizer.json").write_text("{not json")
  with pytest.raises(UserError, match="cannot load a tokenizer"):
    load_tokenizer(str(tmp_path))


def test_loading_does_not_import_transformers(directory):
  """The point of FastTokenizer: transformers (and with it PyTorch) stays out of the process."""
  code = ("import sys, json; from mtl_jax.tokenizer import load_tokenizer; "
          f"load_tokenizer({directory!r}); print(json.dumps(sorted(m for m in ('transformers', 'torch') "
          "if m in sys.modules)))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONPATH": os.getcwd()})
  assert json.loads(out.stdout) == []


@pytest.mark.parametrize("kind,tokenizer_class,first,last,pair", [
    ("byte-level BPE", "RobertaTokenizer", "<s>", "</s>", "<s> $A </s> </s> $B </s>"),
    ("SentencePiece", "XLMRobertaTokenizer", "<s>", "</s>", "<s> $A </s> </s> $B </s>"),
    ("SentencePiece", "DebertaV2Tokenizer", "[CLS]", "[SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"),
])
def test_family_tokenizers_give_transformers_ids_for_texts_and_pairs(kind, tokenizer_class, first, last, pair,
                                                                    tmp_path):
  """Tokenizers trained here, saved with the family's tokenizer class: the ids of texts, and of text pairs as
  mtl_jax lays them out (with token types), are those of the family's own transformers tokenizer."""
  directory = trained_tokenizer(kind, tmp_path, ["Paris is the capital of France .",
                                                 "The U.S. open starts in New York on Monday 's night"] * 20,
                                first, last, pair)
  with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": tokenizer_class}, f)
  ours, reference = FastTokenizer(directory), AutoTokenizer.from_pretrained(directory)
  assert type(reference).__name__.startswith(tokenizer_class)
  texts, pairs = ["Paris is in New York", "the U.S. 's night", "Monday"], ["France .", "Monday night", None]
  assert ours(texts)["input_ids"] == reference(texts)["input_ids"]
  ids, types, _ = tokenize_pairs(texts, pairs, ours, 64)
  expected = [reference(t, p, return_token_type_ids=True) for t, p in zip(texts, pairs)]
  assert [list(x) for x in ids] == [e["input_ids"] for e in expected]
  assert [list(x) for x in types] == [e["token_type_ids"] for e in expected]
