"""Host-side span-level tagging metrics (pure Python) for IOB1, IOB2 and BIOES tag sequences.

Conventions (chosen to match seqeval's default, conlleval-compatible mode exactly; see
tests/test_spans.py):

* A tag is ``O``, a bare prefix (``B``, ``I``; plus ``E``, ``S`` in BIOES) or ``<prefix>-<type>``.
  The type is everything after the FIRST hyphen (``B-creative-work`` has type ``creative-work``);
  a bare prefix or an empty type (``B-``) has type ``_``, as in seqeval. Any other tag, or an
  ``E``/``S`` prefix in IOB1/IOB2, raises ValueError.
* Spans are decoded leniently with conlleval's chunk start/end rules, as extended by seqeval for
  ``E``/``S`` (the same rules for every scheme, which is how conlleval reads IOB1 and IOB2 alike):
  an ``I-X`` after ``O`` or after a different type starts a span; a type change always ends one;
  ``B-X`` always starts one (in IOB1 it only ever appears between adjacent same-type spans);
  ``E-X`` and ``S-X`` always end one. Spans are ``(type, start, end_exclusive)`` per sentence,
  and the end of a sentence ends every span.
* ``span_scores``: micro ``precision``/``recall``/``f1`` over all spans (a span is correct when
  type, start and end all match), ``f1/<TYPE>`` for every type found in gold OR pred, and
  ``accuracy`` = correct tags / all tags. Any ratio with a zero denominator is 0.0, as seqeval's
  ``zero_division="warn"`` returns; with no tokens at all ``accuracy`` is 0.0 too (seqeval raises
  ZeroDivisionError there).
* Gold and pred must have the same number of sentences and the same length per sentence (else
  ValueError naming the sentence); a sentence given as a plain string is a TypeError.
"""

from __future__ import annotations

from collections.abc import Sequence

SCHEMES: tuple[str, ...] = ("IOB1", "IOB2", "BIOES")

_PREFIXES = {"IOB1": frozenset("BI"), "IOB2": frozenset("BI"), "BIOES": frozenset("BIES")}
_UNTYPED = "_"  # seqeval's type for a bare prefix such as "B" or "B-"

Span = tuple[str, int, int]


def _check_scheme(scheme: str) -> None:
  """Raise ValueError for a scheme not in SCHEMES."""
  if scheme not in _PREFIXES:
    raise ValueError(f"unknown tagging scheme {scheme!r}; expected one of {SCHEMES}")


def split_tag(tag: str, scheme: str) -> tuple[str, str]:
  """``(prefix, type)`` of one tag: ``("O", "")`` for ``O``; split on the first hyphen otherwise."""
  if tag == "O":
    return "O", ""
  prefix, _, type_ = tag.partition("-")
  if prefix not in _PREFIXES[scheme]:
    raise ValueError(f"tag {tag!r} is not valid in {scheme} (prefixes {''.join(sorted(_PREFIXES[scheme]))} or O)")
  return prefix, type_ or _UNTYPED


def _ends(prev_prefix: str, prev_type: str, prefix: str, type_: str) -> bool:
  """Whether the span open at the previous token ends before this token (conlleval/seqeval)."""
  return prev_prefix != "O" and (prev_prefix in "ES" or prev_type != type_ or (prev_prefix in "BI" and prefix in "BSO"))


def _starts(prev_prefix: str, prev_type: str, prefix: str, type_: str) -> bool:
  """Whether a span starts at this token (conlleval/seqeval)."""
  return prefix != "O" and (prefix in "BS" or prev_type != type_ or (prev_prefix in "ESO" and prefix in "EI"))


def extract_spans(tags: Sequence[str], scheme: str) -> list[Span]:
  """Every ``(type, start, end_exclusive)`` span of one sentence, in order (see module docstring)."""
  _check_scheme(scheme)
  spans: list[Span] = []
  prev_prefix, prev_type, begin = "O", "", 0
  for i, tag in enumerate([*tags, "O"]):
    prefix, type_ = split_tag(tag, scheme)
    if _ends(prev_prefix, prev_type, prefix, type_):
      spans.append((prev_type, begin, i))
    if _starts(prev_prefix, prev_type, prefix, type_):
      begin = i
    prev_prefix, prev_type = prefix, type_
  return spans


def _tag(prefix: str, type_: str) -> str:
  """Join a prefix and a type; untyped spans get a bare prefix."""
  return prefix if type_ == _UNTYPED else f"{prefix}-{type_}"


def spans_to_tags(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
  """Encode non-overlapping spans of a sentence of ``length`` tokens in ``scheme``."""
  _check_scheme(scheme)
  tags = ["O"] * length
  prev: Span | None = None
  for span in sorted(spans, key=lambda s: s[1]):
    type_, start, end = span
    if not 0 <= start < end <= length or (prev is not None and start < prev[2]):
      raise ValueError(f"span {span} overlaps another span or lies outside [0, {length})")
    for i in range(start, end):
      tags[i] = _tag("I", type_)
    if scheme == "IOB2" or (scheme == "IOB1" and prev is not None and prev[2] == start and prev[0] == type_):
      tags[start] = _tag("B", type_)
    elif scheme == "BIOES":
      if end - start == 1:
        tags[start] = _tag("S", type_)
      else:
        tags[start], tags[end - 1] = _tag("B", type_), _tag("E", type_)
    prev = span
  return tags


def convert_tags(tags: Sequence[str], source: str, target: str) -> list[str]:
  """Re-encode one sentence from ``source`` to ``target`` scheme through its (leniently decoded) spans."""
  return spans_to_tags(extract_spans(tags, source), len(tags), target)


def _check_lengths(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
  """Raise ValueError unless gold and pred have equal sentence counts and lengths."""
  if len(gold) != len(pred):
    raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
  for i, (g, p) in enumerate(zip(gold, pred)):
    if isinstance(g, str) or isinstance(p, str):
      raise TypeError(f"sentence {i} is a string; expected a sequence of sentences, each a sequence of tags")
    if len(g) != len(p):
      raise ValueError(f"sentence {i}: gold has {len(g)} tags but pred has {len(p)}")


def _div(num: float, den: float) -> float:
  """num / den, or 0.0 when den == 0 (seqeval's zero division)."""
  return num / den if den else 0.0


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
  """Precision, recall and F1 from span counts, computed as seqeval does."""
  precision, recall = _div(tp, n_pred), _div(tp, n_gold)
  return precision, recall, _div(2.0 * precision * recall, precision + recall)


def span_counts(
  gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str
) -> dict[str, tuple[int, int, int]]:
  """``{type: (correct, predicted, gold)}`` span counts for every type in gold or pred, sorted by type."""
  _check_lengths(gold, pred)
  counts: dict[str, list[int]] = {}
  for g_tags, p_tags in zip(gold, pred):
    g_spans, p_spans = set(extract_spans(g_tags, scheme)), set(extract_spans(p_tags, scheme))
    for span in g_spans | p_spans:
      c = counts.setdefault(span[0], [0, 0, 0])
      c[0] += span in g_spans and span in p_spans
      c[1] += span in p_spans
      c[2] += span in g_spans
  return {type_: (c[0], c[1], c[2]) for type_, c in sorted(counts.items())}


def span_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict[str, float]:
  """Micro ``precision``/``recall``/``f1``, ``f1/<TYPE>`` per type and token ``accuracy`` (see module docstring)."""
  counts = span_counts(gold, pred, scheme)
  tp, n_pred, n_gold = (sum(c[k] for c in counts.values()) for k in range(3))
  precision, recall, f1 = _prf(tp, n_pred, n_gold)
  n_tokens = sum(len(g) for g in gold)
  n_correct = sum(gt == pt for g, p in zip(gold, pred) for gt, pt in zip(g, p))
  out = {"precision": precision, "recall": recall, "f1": f1, "accuracy": _div(n_correct, n_tokens)}
  out.update({f"f1/{type_}": _prf(*c)[2] for type_, c in counts.items()})
  return out


def span_report(
  gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str
) -> dict[str, dict[str, float]]:
  """``{type: {precision, recall, f1, support}}`` per type in gold or pred, plus ``micro avg``; support = gold spans."""
  counts = span_counts(gold, pred, scheme)
  totals = tuple(sum(c[k] for c in counts.values()) for k in range(3))
  report = {}
  for name, (tp, n_pred, n_gold) in [*counts.items(), ("micro avg", totals)]:
    precision, recall, f1 = _prf(tp, n_pred, n_gold)
    report[name] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
  return report
