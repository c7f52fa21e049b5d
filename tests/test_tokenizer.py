"""FastTokenizer (tokenizers alone) against transformers' AutoTokenizer on the same tokenizer files."""

import json
import os
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from mtl_jax.encoder import DEFAULT_PRETRAINED, resolve_encoder_dir
from mtl_jax.errors import UserError
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
