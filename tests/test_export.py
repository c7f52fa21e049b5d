"""The export to transformers / PyTorch against transformers itself: a checkpoint of each encoder family (a small random
model saved by transformers, loaded by mtl_jax, with random heads over classification and tagging tasks) is exported;
`AutoModel.from_pretrained` must load every weight and give our encoder's hidden states, and README's PyTorch code,
run as README has it, must give `Predictor`'s probabilities and tags."""

import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
import transformers
from flax import traverse_util
from runs import REPO, trained_tokenizer
from test_encoders import family_shapes, save_family

from mtl_jax import checkpoint, encoders, export
from mtl_jax import encoder as enc
from mtl_jax.encoders import Encoder, bert, weights
from mtl_jax.errors import UserError
from mtl_jax.input_pipeline import make_batch
from mtl_jax.model import Model
from mtl_jax.predict import Predictor
from mtl_jax.tasks import Layout, Task
from mtl_jax.tokenizer import load_tokenizer

# the kinds interleaved, so that offsets within a kind's head count
LAYOUT = Layout((Task("sentiment", "classification", ("negative", "neutral", "positive")),
                 Task("pos", "tagging", ("NOUN", "VERB", "DET", "ADP", "PUNCT")),
                 Task("moderation", "multilabel", ("toxic", "spam", "off_topic")),
                 Task("topic", "classification", ("billing", "technical", "shipping", "account")),
                 Task("similarity", "regression", ()),
                 Task("ner", "tagging", ("O", "B-LOC", "I-LOC"), scheme="IOB2")))
TEXT_LAYOUT = Layout(tuple(t for t in LAYOUT.tasks if t.kind != "tagging"))
SENTENCES = [["Paris", "is", "the", "capital", "of", "France", "."],
             ["The", "U.S.", "open", "starts", "in", "New", "York", "on", "Monday", "'s", "night"]]
# family (as tests/test_encoders.py builds it) -> (tokenizer, pooling, layout); DistilBERT's has no word task, so
# its texts are tokenized whole
CASES = {"bert": ("WordPiece", "mean", LAYOUT), "roberta": ("byte-level BPE", "cls", LAYOUT),
         "xlm-roberta": ("SentencePiece", "mean", LAYOUT), "distilbert": ("WordPiece", "cls", TEXT_LAYOUT),
         "electra": ("WordPiece", "mean", LAYOUT), "deberta-v3": ("SentencePiece", "cls", LAYOUT),
         "deberta-v2": ("byte-level BPE", "mean", LAYOUT), "modernbert": ("byte-level BPE", "mean", LAYOUT)}
PAIRS_AS_DEBERTA = ("deberta-v3", "deberta-v2", "modernbert")  # `[CLS] a [SEP] b [SEP]`, as their tokenizers pair texts
TEXTS = ["the app crashes when I log in", "my parcel never arrived"]


def readme_code() -> str:
  """The PyTorch block of README's export section, as a user copies it."""
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  section = readme[readme.index("## Export to transformers / PyTorch"):]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def family_tokenizer(kind: str, directory, pairs: str = "roberta") -> object:
  """A byte-level BPE (RoBERTa's `<s> ... </s>`) or SentencePiece unigram (DeBERTa-v3's `[CLS] ... [SEP]`) tokenizer
  trained here on the test sentences, laying out text pairs as `pairs` does (RoBERTa: `<s> a </s></s> b </s>`;
  DeBERTa: `[CLS] a [SEP] b [SEP]`, token types 0 / 1); WordPiece is the packaged MiniLM's."""
  if kind == "WordPiece":
    return load_tokenizer(enc.resolve_encoder_dir(enc.DEFAULT_PRETRAINED))
  first, last = ("<s>", "</s>") if kind == "byte-level BPE" else ("[CLS]", "[SEP]")
  pair = f"{first} $A {last} {last} $B {last}" if pairs == "roberta" else f"{first} $A {last} $B:1 {last}:1"
  texts = [" ".join(s) for s in SENTENCES] * 20 + ["x an app crashes"] * 5
  return load_tokenizer(trained_tokenizer(kind, directory, texts, first, last, pair, unigram_vocab=120))


def write_checkpoint(directory, family: str, seed: int = 0) -> str:
  """A best/ checkpoint as training writes one (params, meta, tokenizer): the family's random model with random heads
  (std 1, so that every probability differs from uniform)."""
  tokenizer_kind, pooling, layout = CASES[family]
  tokenizer = family_tokenizer(tokenizer_kind, directory / "tokenizer",
                                "deberta" if family in PAIRS_AS_DEBERTA else "roberta")
  save_family(family, directory / "hf", vocab=len(tokenizer), seed=seed)
  config, encoder_params = enc.load_pretrained(str(directory / "hf"))
  model = Model(Encoder(config), layout, pooling)
  shapes = jax.eval_shape(model.init, jax.random.key(0))["heads"]
  heads = jax.tree.map(lambda x: jax.random.normal(jax.random.key(seed), x.shape), shapes)
  meta = {"tasks": layout.to_dict(), "encoder": config.to_dict(), "pooling": pooling, "dtype": "float32",
          "length_buckets": [32, 64], "step": 1}
  checkpoint.save(checkpoint.manager(str(directory / "run" / checkpoint.BEST)), 1,
                  {"params": {"encoder": encoder_params, "heads": heads}}, meta, checkpoint.tokenizer_files(tokenizer))
  return str(directory / "run")


def flax_reference(predictor: Predictor, inputs: list) -> tuple[dict, np.ndarray, list[dict[str, np.ndarray]]]:
  """Our model on the inputs as Predictor encodes them for the taggers (words) if any, else for the text tasks, in
  one padded batch: (the batch, the encoder's last hidden
  states, per input each task's logits: [outputs] per text task, [words, outputs] per word task at each word's first
  sub-token)."""
  data = predictor.encode_words(inputs)[0] if predictor.taggers else predictor.encode(inputs)
  batch = make_batch(data, np.arange(len(data)), len(data), predictor.length_buckets,
                     predictor.tokenizer.pad_token_id or 0)
  model = predictor.model
  hidden, logits = jax.jit(lambda p, b: (model.encoder.apply({"params": p["encoder"]}, b["input_ids"],
                                                             b["attention_mask"]), model.logits(p, b)))(
      predictor.params, batch)
  layout, out = predictor.layout, [{} for _ in inputs]
  for task, offset, size in zip(layout.tasks, layout.offsets, layout.group_sizes):
    for row, result in enumerate(out):
      group = np.asarray(logits[task.kind][row, ..., offset:offset + size])
      result[task.name] = group[data.starts[row]] if task.kind == "tagging" else group
  return batch, np.asarray(hidden), out


def run_readme(directory) -> dict:
  """README's code, run in the directory that holds `exported/`; returns its namespace."""
  cwd, namespace = os.getcwd(), {}
  os.chdir(directory)
  try:
    exec(compile(readme_code(), "README.md", "exec"), namespace)
  finally:
    os.chdir(cwd)
  return namespace


@pytest.mark.parametrize("family", sorted(CASES))
def test_transformers_and_readme_code_give_what_mtl_jax_gives(family, tmp_path, monkeypatch):
  run = write_checkpoint(tmp_path, family)
  (tmp_path / "exported").mkdir()  # an empty directory is fine
  with monkeypatch.context() as m:
    m.setitem(sys.modules, "torch", None)  # the export runs without PyTorch: any `import torch` fails
    export.export(run, str(tmp_path / "exported"))
  files = {name: os.stat(tmp_path / "exported" / name).st_mode for name in ("config.json", "model.safetensors",
                                                                            export.HEADS)}
  assert len(set(files.values())) == 1, files  # safetensors' files as readable as the others
  predictor = Predictor.load(run)
  layout = predictor.layout
  inputs = SENTENCES if layout == LAYOUT else TEXTS  # words where a task reads words (README), else texts
  batch, hidden, references = flax_reference(predictor, inputs)

  model, info = transformers.AutoModel.from_pretrained(str(tmp_path / "exported"), output_loading_info=True)
  assert not any(info.values()), info  # no missing, unexpected or mismatched weights, no errors
  with torch.no_grad():  # the same padded batch (rows of different lengths)
    want = model.eval()(input_ids=torch.tensor(batch["input_ids"]),
                        attention_mask=torch.tensor(batch["attention_mask"])).last_hidden_state.numpy()
  real = batch["attention_mask"].astype(bool)
  hidden_diff = float(np.abs(hidden[real] - want[real]).max())
  assert hidden_diff <= 1e-4

  readme, diffs = run_readme(tmp_path), []
  for x, expected, logits in zip(inputs, predictor.predict(inputs), references):
    got = readme["predict"](x)
    for task in layout.tasks:
      diffs.append(difference(task, got[task.name].numpy(), expected[task.name], logits[task.name]))
  pair = ("the app crashes when I log in", "my parcel never arrived")  # the text tasks read a text pair alike
  got, expected = readme["predict"](*pair), predictor.predict([pair[0]], pairs=[pair[1]])[0]
  diffs += [difference(task, got[task.name].numpy(), expected[task.name]) for task in TEXT_LAYOUT.tasks]
  if family == "bert":  # inputs without words: no tags, and the text tasks still read the (empty) text
    for result in predictor.predict([[], ""]):
      assert result["pos"]["tags"] == [] and len(result["sentiment"]["probs"]) == 3 and "value" in result["similarity"]
    tagged = predictor.predict(inputs, tasks=["pos", "ner"])  # what --format=conll asks for: the word pass alone
    assert tagged == [{t: r[t] for t in ("pos", "ner")} for r in predictor.predict(inputs)]
  print(f"{family}: hidden states {hidden_diff:.2e}, probabilities {max(diffs):.2e}")
  assert max(diffs) <= 1e-4


def difference(task: Task, got: np.ndarray, expected: dict, logits: np.ndarray | None = None) -> float:
  """README's outputs against Predictor's result for one task: probabilities (classification, multilabel), the
  score (regression), tags (tagging: Predictor gives no probabilities, so those are checked against our logits)."""
  if task.kind == "regression":
    return abs(float(got[0]) - expected["value"])
  if task.kind == "tagging":
    assert [task.labels[k] for k in got.argmax(-1)] == expected["tags"]
    return float(np.abs(got - np.asarray(jax.nn.softmax(logits, -1))).max())
  if task.kind == "multilabel":
    assert [label for label, p in zip(task.labels, got) if p >= task.threshold] == expected["labels"]
  return float(np.abs(got - [expected["probs"][label] for label in task.labels]).max())


def test_every_family_s_config_and_weight_names_read_back_as_written():
  """The inverse mappings of every test config of tests/test_encoders.py (CamemBERT and sinusoidal DistilBERT too)."""
  for name, config, shapes in family_shapes():
    module = encoders.FAMILIES[config.family]
    assert encoders.from_hf(module.config_to_hf(config), "config.json") == (module, config), name
    for path in traverse_util.flatten_dict(shapes):
      assert module.hf_name_to_path(module.path_to_hf_name(path)) == path, (name, path)


def test_a_name_that_does_not_read_back_is_refused():
  params, wrong = {"layer_0": {"query": {"kernel": np.zeros((2, 2))}}}, "encoder.layer.0.attention.self.key.weight"
  with pytest.raises(ValueError, match=f"layer_0/query/kernel is written as '{wrong}', which reads back as"):
    weights.from_tree(params, lambda path: wrong, bert.hf_name_to_path)


def test_mtl_tasks_json_describes_heads_and_tasks(tmp_path):
  from mtl_jax.kinds import KINDS
  spec = export.task_spec(Model(Encoder(enc.random_config("random-tiny")), LAYOUT, "cls"), 64)
  assert spec["pooling"] == "cls" and spec["max_length"] == 64
  assert spec["kinds"] == {
      "classification": {"reads": "pooled", "activation": KINDS["classification"].activation, "outputs": 7},
      "tagging": {"reads": "word_starts", "activation": KINDS["tagging"].activation, "outputs": 8},
      "multilabel": {"reads": "pooled", "activation": KINDS["multilabel"].activation, "outputs": 3},
      "regression": {"reads": "pooled", "activation": KINDS["regression"].activation, "outputs": 1}}
  assert [t.get("threshold") for t in spec["tasks"]] == [None, None, 0.5, None, None, None]  # multilabel's alone
  assert [(t["name"], t["kind"], t["offset"], t["size"], t["labels"][:1], t["scheme"]) for t in spec["tasks"]] == [
      ("sentiment", "classification", 0, 3, ["negative"], None), ("pos", "tagging", 0, 5, ["NOUN"], None),
      ("moderation", "multilabel", 0, 3, ["toxic"], None), ("topic", "classification", 3, 4, ["billing"], None),
      ("similarity", "regression", 0, 1, [], None), ("ner", "tagging", 5, 3, ["O"], "IOB2")]


def test_an_existing_output_directory_is_refused_through_the_cli(tmp_path):
  (tmp_path / "exported").mkdir()
  (tmp_path / "exported" / "keep.txt").write_text("mine")
  result = subprocess.run([sys.executable, "-m", "mtl_jax.export", f"--checkpoint={tmp_path}",
                           f"--output={tmp_path / 'exported'}"], cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip() == (f"error: {tmp_path / 'exported'}: exists and is not an empty directory; "
                                   "choose a new --output")
  assert (tmp_path / "exported" / "keep.txt").read_text() == "mine"


def test_a_missing_checkpoint_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="checkpoint directory not found"):
    export.export(str(tmp_path / "nowhere"), str(tmp_path / "exported"))
  assert not (tmp_path / "exported").exists()
