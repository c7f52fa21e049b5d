"""mtl_jax.predict: the CLI on words (JSONL `words` rows, --format=conll) against the
Predictor, mtl_jax.evaluate and seqeval (prediction of texts end to end is in test_train.py)."""

import concurrent.futures
import json
import re
import subprocess
import sys

import pytest
from runs import REPO
from seqeval.metrics import f1_score as seqeval_f1

from mtl_jax import corpora
from mtl_jax.errors import UserError
from mtl_jax.predict import Predictor, jsonl_input

# ---------------------------------------------------------------------------------------------------------------
# The CLI on words: JSONL `words` rows and --format=conll, against the Predictor, evaluate and seqeval.

def predict_command(*args) -> list[str]:
  return [sys.executable, "-m", "mtl_jax.predict", *args]


def chunk_test_sentences(config) -> list[list[str]]:
  """The original lines of the sentences evaluate scores as the chunk task's test split (downsampled in the smoke
  config), read from the file by the line numbers the corpus records carry."""
  (corpus,) = corpora.group_tasks(config, ["chunk"])
  corpora.load_corpus(corpus, config, config.seed)
  sentences = []
  for words, _, where in corpus.splits["test"]:
    path, line = where.rsplit(":", 1)
    lines = open(path, encoding="utf-8").read().split("\n")[int(line) - 1:int(line) - 1 + len(words)]
    assert [x.split()[0] for x in lines] == list(words)
    sentences.append(lines)
  return sentences


def conll_file(test_sentences: list[list[str]], long_sentence: list[str]) -> str:
  """-DOCSTART-, the test sentences (space-separated), another -DOCSTART-, then one long sentence tab-separated with
  CRLF line ends, and two blank lines at the end."""
  body = "".join("\n".join(lines) + "\n\n" for lines in test_sentences)
  tabbed = "".join("\t".join(line.split()) + "\r\n" for line in long_sentence)
  return f"-DOCSTART- -X- -X- O\n\n{body}-DOCSTART- -X- -X- O\n\n{tabbed}\n\n"


def test_conll_round_trip_equals_predictor_and_evaluate(pos_chunk_run, shared_data, tmp_path):
  config, workdir, _ = pos_chunk_run
  test_sentences = chunk_test_sentences(config)
  long_sentence = [line for lines in test_sentences[:6] for line in lines]  # one sentence of six
  (tmp_path / "in.conll").write_bytes(conll_file(test_sentences, long_sentence).encode("utf-8"))
  predict = subprocess.Popen(predict_command(f"--checkpoint={workdir}", "--format=conll",
                                             f"--input={tmp_path / 'in.conll'}", f"--output={tmp_path / 'out.conll'}"),
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  evaluated = subprocess.run([sys.executable, "-m", "mtl_jax.evaluate", f"--checkpoint={workdir}", "--split=test",
                              f"--output={tmp_path / 'eval'}", f"--data_root={shared_data}"],
                             cwd=REPO, capture_output=True, text=True)
  assert predict.wait() == 0 and evaluated.returncode == 0, predict.stderr.read()[-2000:] + evaluated.stderr[-2000:]

  # Every input line is still there, byte for byte, with its line end; token lines gain one column per tagger.
  lines_in = (tmp_path / "in.conll").read_bytes().decode("utf-8").split("\n")
  lines_out = (tmp_path / "out.conll").read_bytes().decode("utf-8").split("\n")
  assert len(lines_out) == len(lines_in)
  predictor = Predictor.load(workdir)
  taggers = [t.name for t in predictor.layout.tasks if t.kind == "tagging"]
  assert sorted(taggers) == ["chunk", "pos"]
  appended, sentences, sentence = [], [], []
  for line_in, line_out in zip(lines_in, lines_out):
    if not line_in.strip() or line_in.startswith("-DOCSTART-"):
      assert line_out == line_in
      if sentence:
        sentences.append(sentence)
      sentence = []
      continue
    body, end = line_in.removesuffix("\r"), line_in[len(line_in.removesuffix("\r")):]
    assert line_out.startswith(body) and line_out.endswith(end)
    added = line_out[len(body):len(line_out) - len(end)]
    separator = "\t" if "\t" in body else " "
    assert added.startswith(separator) and added.count(separator) == len(taggers)
    appended.append(added.split(separator)[1:])
    sentence.append(body.split()[0])
  assert len(sentences) == len(test_sentences) + 1 and sentences[-1] == [x.split()[0] for x in long_sentence]
  pieces = sum(len(predictor.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in sentences[-1])
  assert pieces > max(predictor.length_buckets)  # the long sentence was split into windows

  # The columns are what the Predictor tags the file's words with, task by task in layout order.
  results = predictor.predict(sentences)
  expected = [[r[task]["tags"][i] for task in taggers] for r, words in zip(results, sentences)
              for i in range(len(words))]
  assert appended == expected

  # seqeval's span F1 of the appended chunk column against the file's (conlleval semantics, as evaluate scores) is
  # what mtl_jax.evaluate reports for the same checkpoint on the same sentences, its test split.
  chunk = taggers.index("chunk")
  gold = [[line.split()[2] for line in lines] for lines in test_sentences]
  flat_pred = iter(tags[chunk] for tags in appended)
  pred = [[next(flat_pred) for _ in lines] for lines in test_sentences]
  metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
  assert seqeval_f1(gold, pred) == pytest.approx(metrics["test/chunk/f1"], abs=1e-6)
  assert 0 < metrics["test/chunk/f1"] < 1


def test_jsonl_words_rows_tagged_as_given_and_bad_input_named(pos_chunk_run, tmp_path):
  _, workdir, _ = pos_chunk_run
  words = ["Mr.", "Smith", "'s", "U.S.", "--", "1."]  # the regex for texts would split 'Mr.', 'U.S.', '--', '1.'
  rows = [{"words": words}, {"text": "Mr. Smith's U.S. car"}, {"words": []}]
  (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  cases = {  # file content, arguments, the one expected line ({path}: the file)
      "words not a list": ('{"words": ["a"]}\n{"words": "EU rejects"}\n', [],
                           "{path}:2: field 'words': expected a list of strings, found 'EU rejects'"),
      "a word not a string": ('{"words": ["EU", 3]}\n', [], "{path}:1: field 'words'[1]: expected a string, found 3"),
      "neither field": ('{"txt": "x"}\n', [], "{path}:1: field 'text' or 'words': expected a string 'text' or a "
                                              "list of strings 'words', found neither (keys: ['txt'])"),
      "both fields": ('{"text": "a", "words": ["a"]}\n', [],
                      "{path}:1: fields 'text' and 'words': expected one of them, found both"),
      "too few columns": ("EU NNP B-NP\n\nPeter NNP\n", ["--format=conll", "--word_column=2"],
                          "{path}:3: field 'word' (column 2): expected at least 3 columns, found 2"),
  }
  jobs = [predict_command(f"--checkpoint={workdir}", f"--input={tmp_path / 'in.jsonl'}")]
  for n, (case, (content, args, _)) in enumerate(cases.items()):
    (tmp_path / f"bad{n}").write_text(content)
    jobs.append(predict_command(f"--checkpoint={workdir}", f"--input={tmp_path / f'bad{n}'}", *args))
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    good, *bad = pool.map(lambda cmd: subprocess.run(cmd, cwd=REPO, capture_output=True, text=True), jobs)

  assert good.returncode == 0, good.stderr[-2000:]
  out = [json.loads(line) for line in good.stdout.splitlines()]
  inputs = [words, "Mr. Smith's U.S. car", []]
  assert out == [{next(iter(r)): value, **result} for r, value, result in
                 zip(rows, inputs, Predictor.load(workdir).predict(inputs))]
  assert out[0]["chunk"]["words"] == out[0]["pos"]["words"] == words and len(out[0]["pos"]["tags"]) == len(words)
  assert out[1]["pos"]["words"] == ["Mr", ".", "Smith's", "U.S", ".", "car"]  # a text keeps today's splitting
  for n, (case, (_, _, line)) in enumerate(cases.items()):
    result = bad[n]
    assert result.returncode == 2 and result.stdout == "", case
    assert result.stderr == "error: " + line.format(path=tmp_path / f"bad{n}") + "\n", (case, result.stderr)


def test_a_rows_text_pair_is_read_as_a_tables():
  """null or "" is no pair (the row stays a single text, as in training); a blank or non-string pair is named."""
  assert jsonl_input("in.jsonl:1", {"text": "a", "text_pair": ""}) == {"text": "a"}
  assert jsonl_input("in.jsonl:1", {"text": "a", "text_pair": None}) == {"text": "a"}
  assert jsonl_input("in.jsonl:1", {"words": ["a"], "text_pair": "b"}) == {"words": ["a"], "text_pair": "b"}
  for pair in ("  ", 5):
    with pytest.raises(UserError, match=f"^in.jsonl:2: field 'text_pair': expected a non-empty string, found "
                                        f"{re.escape(repr(pair))}$"):
      jsonl_input("in.jsonl:2", {"text": "a", "text_pair": pair})
