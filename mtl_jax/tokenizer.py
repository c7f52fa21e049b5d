"""Loading tokenizers: a Hugging Face fast tokenizer (`tokenizer.json`) is read with the `tokenizers` library alone.

transformers imports PyTorch when it is installed, which costs seconds in every process that loads a tokenizer (each
CLI run, each test subprocess); mtl_jax only needs token ids, so a directory with a tokenizer.json is read directly
(the same Rust tokenizer transformers' fast tokenizers wrap), and transformers' AutoTokenizer remains the fallback for
tokenizers without one (e.g. sentencepiece-only models).
"""

import json
import os

from mtl_jax.errors import UserError

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")  # what FastTokenizer reads and saves


class FastTokenizer:
  """The part of a transformers tokenizer mtl_jax uses: `tok(texts, add_special_tokens=...)["input_ids"]`, `len`,
  `pad_token_id`, `unk_token_id` (and `cls_token_id`, `sep_token_id`) and `save_pretrained`. Truncation and padding stored in tokenizer.json are switched
  off, as transformers does unless asked."""

  def __init__(self, directory: str):
    from tokenizers import Tokenizer
    self.files = {}
    for name in FILES:
      if os.path.isfile(path := os.path.join(directory, name)):
        with open(path, "rb") as f:
          self.files[name] = f.read()
    self.backend = Tokenizer.from_str(self.files["tokenizer.json"].decode("utf-8"))
    self.backend.no_truncation()
    self.backend.no_padding()
    specials = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the config's entries win, as in transformers
      specials.update(json.loads(self.files.get(name, b"{}")))
    self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id = (
        self._token_id(specials.get(f"{k}_token")) for k in ("pad", "unk", "cls", "sep"))

  def _token_id(self, token) -> int | None:
    token = token.get("content") if isinstance(token, dict) else token
    return self.backend.token_to_id(token) if isinstance(token, str) else None

  def __call__(self, texts, text_pair=None, add_special_tokens: bool = True, return_token_type_ids: bool = False,
               verbose: bool = False) -> dict:
    """As transformers' call: `texts` one string or a list, `text_pair` its second texts (a pair each)."""
    single = isinstance(texts, str)
    inputs = [texts] if single else list(texts)
    if text_pair is not None:
      inputs = list(zip(inputs, [text_pair] if single else text_pair))
    encodings = self.backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
    out = {"input_ids": [e.ids for e in encodings]}
    if return_token_type_ids:
      out["token_type_ids"] = [e.type_ids for e in encodings]
    return {k: v[0] for k, v in out.items()} if single else out

  def __len__(self) -> int:
    return self.backend.get_vocab_size(with_added_tokens=True)

  def save_pretrained(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, data in self.files.items():
      with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def load_tokenizer(directory: str):
  """The tokenizer of a directory: FastTokenizer where there is a tokenizer.json, else transformers' AutoTokenizer."""
  try:
    if os.path.isfile(os.path.join(directory, "tokenizer.json")):
      return FastTokenizer(directory)
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(directory)
  except Exception as e:  # OSError/ValueError from transformers; tokenizers raises a plain Exception on a bad JSON
    raise UserError(f"{directory}: cannot load a tokenizer: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                    ) from None
