"""Tests for mtl_jax.spans against seqeval (default, conlleval-compatible mode) as an independent reference."""

from __future__ import annotations

import os
import random
import warnings

import pytest
from seqeval import metrics as sq
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOBES

from mtl_jax.spans import SCHEMES, convert_tags, extract_spans, span_report, span_scores

TOL = 1e-9
SEQEVAL_TOKENS = 10_000  # seqeval is slow (~2.5 us/token per call, ~16 calls per comparison): compare on a stride
PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}

# (file under shared/data, column separator, tag column, scheme, types only in other splits of the same tag set)
REAL_FILES = {
  "conll2003-ner-iob1": ("conll2003/eng.testa", " ", 3, "IOB1", ()),
  "conll2003-chunk-iob1": ("conll2003/eng.testa", " ", 2, "IOB1", ()),
  "conll2003-ner-iob2": ("conll2003/iob2/valid.txt", " ", 3, "IOB2", ()),
  "wnut17-dev": ("wnut17/emerging.dev.conll", "\t", 1, "IOB2", ()),
  "conll2000-chunk": ("conll2000/test.txt", " ", 2, "IOB2", ("UCP",)),  # UCP occurs only in train
}


# ----------------------------------------------------------------------------- helpers
def read_column(path: str, sep: str, column: int) -> list[list[str]]:
  """One tag column of a CoNLL-style file as sentences; blank lines split sentences, -DOCSTART- is skipped."""
  sentences, current = [], []
  with open(path, encoding="utf-8") as f:
    for line in f:
      fields = line.rstrip("\n").split(sep)
      if fields == [""]:
        if current:
          sentences.append(current)
        current = []
      elif fields[0] != "-DOCSTART-":
        current.append(fields[column])
  if current:
    sentences.append(current)
  return sentences


def load(shared_data: str, name: str, subsample: bool = False) -> tuple[list[list[str]], str, list[str]]:
  """Gold sentences, scheme and full type list (gold types plus extras) of one entry of REAL_FILES.

  With ``subsample``, every k-th sentence only, k chosen so that about SEQEVAL_TOKENS tokens remain.
  """
  rel, sep, column, scheme, extra = REAL_FILES[name]
  gold = read_column(os.path.join(shared_data, rel), sep, column)
  if subsample:
    gold = gold[:: -(-sum(map(len, gold)) // SEQEVAL_TOKENS)]
  types = sorted({t.split("-", 1)[1] for sent in gold for t in sent if t != "O"} | set(extra))
  return gold, scheme, types


def corrupt(
  gold: list[list[str]], types: list[str], prefixes: str, seed: int, rate: float = 0.1, swap: float = 0.04
) -> list[list[str]]:
  """Predictions: ~rate of tags replaced by a random tag of the tag set (any transition), ~swap type swaps."""
  rng = random.Random(seed)
  pool = ["O"] + [f"{p}-{t}" for p in prefixes for t in types]
  out = []
  for sent in gold:
    pred = []
    for tag in sent:
      r = rng.random()
      if r < rate:
        tag = rng.choice(pool)
      elif r < rate + swap and tag != "O":
        tag = f"{tag[0]}-{rng.choice(types)}"
      pred.append(tag)
    out.append(pred)
  return out


def seqeval_scores(gold: list[list[str]], pred: list[list[str]], **kw) -> tuple[dict[str, float], dict]:
  """The same keys as span_scores, computed by seqeval (default mode unless kw say otherwise), and its report."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ref = {
      "precision": sq.precision_score(gold, pred, **kw),
      "recall": sq.recall_score(gold, pred, **kw),
      "f1": sq.f1_score(gold, pred, **kw),
      "accuracy": sq.accuracy_score(gold, pred),
    }
    report = sq.classification_report(gold, pred, output_dict=True, **kw)
  ref.update({f"f1/{name}": row["f1-score"] for name, row in report.items() if not name.endswith(" avg")})
  return {k: float(v) for k, v in ref.items()}, report


def assert_scores_match(ours: dict[str, float], ref: dict[str, float]) -> None:
  assert sorted(ours) == sorted(ref)
  bad = {k: (ours[k], ref[k]) for k in ref if abs(ours[k] - ref[k]) > TOL}
  assert not bad, bad


def seqeval_spans(tags: list[str]) -> list[tuple[str, int, int]]:
  """seqeval's entities of one sentence, end made exclusive."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return [(t, s, e + 1) for t, s, e in get_entities(list(tags))]


def random_tags(rng: random.Random, n: int, prefixes: str, types: tuple[str, ...]) -> list[str]:
  pool = ["O"] + [f"{p}-{t}" for p in prefixes for t in types]
  return [rng.choice(pool) for _ in range(n)]


# ----------------------------------------------------------------------------- real data
@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_data_matches_seqeval(shared_data, name):
  gold, scheme, types = load(shared_data, name, subsample=True)
  assert sum(map(len, gold)) > SEQEVAL_TOKENS * 0.6
  pred = corrupt(gold, types, PREFIXES[scheme], seed=len(name))
  ours = span_scores(gold, pred, scheme)
  ref, ref_report = seqeval_scores(gold, pred)
  assert_scores_match(ours, ref)
  assert 0.3 < ours["f1"] < 0.95 and 0.8 < ours["accuracy"] < 0.95  # corruption is realistic, not trivial
  assert span_scores(gold, gold, scheme)["f1"] == 1.0

  report = span_report(gold, pred, scheme)
  assert sorted(report) == sorted(k for k in ref_report if k not in ("macro avg", "weighted avg"))
  for type_, row in report.items():
    for key, ref_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"), ("support", "support")):
      assert abs(row[key] - float(ref_report[type_][ref_key])) <= TOL, (type_, key)


def test_pred_only_type_is_scored(shared_data):
  """conll2000 test has no UCP chunk; predicted UCP spans must show up as f1/UCP = 0 and cost precision."""
  gold, scheme, types = load(shared_data, "conll2000-chunk")
  assert "UCP" in types and not any(t.endswith("-UCP") for sent in gold for t in sent)
  pred = corrupt(gold, types, PREFIXES[scheme], seed=1)
  scores = span_scores(gold, pred, scheme)
  assert scores["f1/UCP"] == 0.0
  assert span_report(gold, pred, scheme)["UCP"]["support"] == 0


@pytest.mark.parametrize("column", [3, 2], ids=["ner", "chunk"])
def test_conll2003_iob1_converts_to_iob2_file(shared_data, column):
  """eng.testa (IOB1) and iob2/valid.txt hold the same sentences; conversion must map one onto the other."""
  iob1 = read_column(os.path.join(shared_data, "conll2003/eng.testa"), " ", column)
  iob2 = read_column(os.path.join(shared_data, "conll2003/iob2/valid.txt"), " ", column)
  assert len(iob1) == len(iob2) == 3250
  assert sum(t.startswith("B-") for s in iob1 for t in s) < sum(t.startswith("B-") for s in iob2 for t in s)
  for a, b in zip(iob1, iob2):
    assert extract_spans(a, "IOB1") == extract_spans(b, "IOB2")
    assert convert_tags(a, "IOB1", "IOB2") == b
    assert convert_tags(b, "IOB2", "IOB1") == a


@pytest.mark.parametrize("name", ["conll2003-ner-iob2", "wnut17-dev"])
def test_bioes_matches_seqeval(shared_data, name):
  gold_iob2, scheme, types = load(shared_data, name, subsample=True)
  assert scheme == "IOB2"
  gold = [convert_tags(s, "IOB2", "BIOES") for s in gold_iob2]
  assert any(t.startswith("S-") for s in gold for t in s) and any(t.startswith("E-") for s in gold for t in s)
  for g2, g in zip(gold_iob2, gold):
    assert extract_spans(g, "BIOES") == extract_spans(g2, "IOB2")

  # Valid BIOES predictions (corrupted IOB2 converted through spans): default and strict IOBES modes agree.
  valid = [convert_tags(s, "IOB2", "BIOES") for s in corrupt(gold_iob2, types, "BI", seed=7)]
  ours = span_scores(gold, valid, "BIOES")
  assert_scores_match(
    {k: v for k, v in ours.items() if k != "accuracy"},
    {k: v for k, v in seqeval_scores(gold, valid)[0].items() if k != "accuracy"},
  )
  strict = seqeval_scores(gold, valid, mode="strict", scheme=IOBES)[0]
  assert_scores_match(
    {k: v for k, v in ours.items() if k != "accuracy"}, {k: v for k, v in strict.items() if k != "accuracy"}
  )
  assert abs(ours["accuracy"] - strict["accuracy"]) <= TOL

  # Invalid transitions drawn from the full BIOES tag set (E-X after O, S-X inside a span, ...): default mode.
  noisy = corrupt(gold, types, "BIES", seed=8)
  assert_scores_match(span_scores(gold, noisy, "BIOES"), seqeval_scores(gold, noisy)[0])


# ----------------------------------------------------------------------------- extraction rules
@pytest.mark.parametrize(
  "tags, scheme, expected",
  [
    ([], "IOB2", []),
    (["O", "O", "O"], "IOB2", []),
    (["B-PER", "I-PER", "O", "B-LOC"], "IOB2", [("PER", 0, 2), ("LOC", 3, 4)]),  # span at the end
    (["O", "I-PER", "I-PER"], "IOB2", [("PER", 1, 3)]),  # I- after O starts a span
    (["B-PER", "I-LOC", "I-LOC"], "IOB2", [("PER", 0, 1), ("LOC", 1, 3)]),  # type change without B-
    (["B-PER", "B-PER", "I-PER"], "IOB2", [("PER", 0, 1), ("PER", 1, 3)]),  # adjacent same type
    (
      ["I-PER", "I-PER", "B-PER", "I-LOC", "O", "I-ORG"],
      "IOB1",
      [("PER", 0, 2), ("PER", 2, 3), ("LOC", 3, 4), ("ORG", 5, 6)],
    ),
    (["I-PER", "I-LOC"], "IOB1", [("PER", 0, 1), ("LOC", 1, 2)]),
    (["B-creative-work", "I-creative-work", "B-person"], "IOB2", [("creative-work", 0, 2), ("person", 2, 3)]),
    (["B", "I", "O", "I"], "IOB2", [("_", 0, 2), ("_", 3, 4)]),  # untyped chunks, seqeval's "_"
    (
      ["S-PER", "B-LOC", "E-LOC", "E-LOC", "O", "E-ORG"],
      "BIOES",
      [("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 4), ("ORG", 5, 6)],
    ),
    (
      ["B-PER", "S-PER", "I-PER", "I-PER", "B-PER"],
      "BIOES",
      [("PER", 0, 1), ("PER", 1, 2), ("PER", 2, 4), ("PER", 4, 5)],
    ),
  ],
)
def test_extract_spans_cases(tags, scheme, expected):
  assert extract_spans(tags, scheme) == expected
  assert seqeval_spans(tags) == expected


@pytest.mark.parametrize("scheme", SCHEMES)
def test_extract_spans_fuzz_matches_seqeval(scheme):
  rng = random.Random(sum(map(ord, scheme)))
  types = ("PER", "LOC", "creative-work")
  for _ in range(3000):
    tags = random_tags(rng, rng.randint(0, 10), PREFIXES[scheme], types)
    assert extract_spans(tags, scheme) == seqeval_spans(tags), tags


@pytest.mark.parametrize("source", SCHEMES)
@pytest.mark.parametrize("target", SCHEMES)
def test_convert_tags_keeps_spans(source, target):
  rng = random.Random(f"{source}->{target}")
  for _ in range(1000):
    tags = random_tags(rng, rng.randint(0, 10), PREFIXES[source], ("PER", "LOC"))
    out = convert_tags(tags, source, target)
    assert len(out) == len(tags)
    assert extract_spans(out, target) == extract_spans(tags, source), (tags, out)
    assert convert_tags(out, target, target) == out  # output is canonical in the target scheme


def test_convert_tags_examples():
  iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]
  assert convert_tags(iob1, "IOB1", "IOB2") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
  assert convert_tags(iob1, "IOB1", "BIOES") == ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG"]
  assert convert_tags(["B-LOC", "O", "B-PER", "B-PER"], "IOB2", "IOB1") == ["I-LOC", "O", "I-PER", "B-PER"]
  assert convert_tags(["O", "I-PER", "I-PER", "I-PER"], "IOB2", "BIOES") == ["O", "B-PER", "I-PER", "E-PER"]
  assert convert_tags(["B", "I"], "IOB2", "BIOES") == ["B", "E"]


# ----------------------------------------------------------------------------- scores: edge cases
EDGE_CASES = {
  "all-O": ([["O", "O"], ["O"]], [["O", "O"], ["O"]]),
  "empty-sentence": ([[], ["B-PER"]], [[], ["B-PER"]]),
  "span-at-end": ([["O", "B-PER", "I-PER"]], [["O", "B-PER", "I-PER"]]),
  "truncated-at-end": ([["O", "B-PER", "I-PER"]], [["O", "B-PER", "O"]]),
  "adjacent-same-type": ([["B-PER", "B-PER", "O"]], [["B-PER", "I-PER", "O"]]),
  "type-change-without-B": ([["B-PER", "I-PER", "B-LOC"]], [["B-PER", "I-LOC", "I-LOC"]]),
  "I-after-O": ([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]]),
  "pred-only-type": ([["B-PER", "O"]], [["B-PER", "B-LOC"]]),
  "no-pred-spans": ([["B-PER", "O"]], [["O", "O"]]),
  "no-gold-spans": ([["O", "O"]], [["B-PER", "O"]]),
  "hyphenated-types": (
    [["B-creative-work", "I-creative-work", "B-person"]],
    [["B-creative-work", "B-creative-work", "B-person"]],
  ),
  "sentence-boundary": ([["O", "B-PER"], ["I-PER", "O"]], [["O", "B-PER"], ["I-PER", "O"]]),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_match_seqeval(name):
  gold, pred = EDGE_CASES[name]
  assert_scores_match(span_scores(gold, pred, "IOB2"), seqeval_scores(gold, pred)[0])


def test_edge_case_values():
  assert span_scores([["B-PER", "O"]], [["B-PER", "B-LOC"]], "IOB2") == {
    "precision": 0.5,
    "recall": 1.0,
    "f1": 2 / 3,
    "accuracy": 0.5,
    "f1/LOC": 0.0,
    "f1/PER": 1.0,
  }
  assert span_scores([["O", "O"]], [["O", "O"]], "IOB2") == {
    "precision": 0.0,
    "recall": 0.0,
    "f1": 0.0,
    "accuracy": 1.0,
  }
  # IOB1: "B-" separates adjacent same-type spans, so merging them is wrong twice over.
  assert span_scores([["I-PER", "B-PER"]], [["I-PER", "I-PER"]], "IOB1")["f1"] == 0.0
  assert span_report([["I-PER", "B-PER"]], [["I-PER", "I-PER"]], "IOB1")["PER"] == {
    "precision": 0.0,
    "recall": 0.0,
    "f1": 0.0,
    "support": 2,
  }


@pytest.mark.parametrize("gold", [[], [[]]])
def test_empty_input_scores_zero(gold):
  """seqeval rejects [] and divides by zero for accuracy; we return 0.0 everywhere."""
  assert span_scores(gold, gold, "IOB2") == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.0}
  assert span_report(gold, gold, "IOB2") == {"micro avg": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}


def test_errors():
  with pytest.raises(ValueError, match="sentence 1"):
    span_scores([["O"], ["O", "O"]], [["O"], ["O"]], "IOB2")
  with pytest.raises(ValueError, match="2 sentences"):
    span_scores([["O"], ["O"]], [["O"]], "IOB2")
  with pytest.raises(TypeError, match="sentence 0 is a string"):
    span_scores(["O"], ["O"], "IOB2")
  with pytest.raises(ValueError, match="not valid in IOB2"):
    extract_spans(["S-PER"], "IOB2")
  with pytest.raises(ValueError, match="not valid in BIOES"):
    extract_spans(["U-PER"], "BIOES")
  with pytest.raises(ValueError, match="not valid"):
    extract_spans(["PER"], "IOB1")
  with pytest.raises(ValueError, match="unknown tagging scheme"):
    extract_spans(["O"], "BILOU")
  with pytest.raises(ValueError, match="unknown tagging scheme"):
    convert_tags(["O"], "IOB2", "IOE2")
