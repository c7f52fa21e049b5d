"""Corpus readers: exact counts on the real corpora in ../shared/data, and one clear UserError for bad input."""

import collections
import gzip
import os

import pytest

from mtl_jax.errors import UserError
from mtl_jax.readers import (
  LabelledText,
  Sentence,
  read_conll,
  read_conllu,
  read_label_list,
  read_mapping,
  read_paired_text_labels,
  read_text_classification,
)

CONLL2003 = {"pos": 1, "chunk": 2, "ner": 3}


def tokens(sentences: list[Sentence]) -> int:
  return sum(len(s.words) for s in sentences)


def entity_counts(sentences: list[Sentence], column: str = "ner") -> dict[str, int]:
  """Entities in IOB1 (or IOB2) tags: one starts at B-X, or at I-X when the previous tag is not of type X."""
  counts = collections.Counter()
  for sentence in sentences:
    previous = "O"
    for tag in sentence.tags[column]:
      if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
        counts[tag[2:]] += 1
      previous = tag
  return dict(counts)


# ---------------------------------------------------------------------------------------------------------------
# Real corpora: each big file is read once per module.

@pytest.fixture(scope="module")
def conll2003(shared_data):
  root = os.path.join(shared_data, "conll2003")
  return {split: read_conll(os.path.join(root, f"eng.{split}"), CONLL2003) for split in ("train", "testa", "testb")}


@pytest.fixture(scope="module")
def ud_train(shared_data):
  return read_conllu(os.path.join(shared_data, "ud_en_ewt", "en_ewt-ud-train.conllu.gz"))


@pytest.mark.parametrize("split,sentences,n_tokens,entities", [
    ("train", 14041, 203621, {"PER": 6600, "LOC": 7140, "ORG": 6321, "MISC": 3438}),
    ("testa", 3250, 51362, {"PER": 1842, "LOC": 1837, "ORG": 1341, "MISC": 922}),
    ("testb", 3453, 46435, {"PER": 1617, "LOC": 1668, "ORG": 1661, "MISC": 702}),
])
def test_conll2003_counts(conll2003, split, sentences, n_tokens, entities):
  data = conll2003[split]
  assert (len(data), tokens(data)) == (sentences, n_tokens)
  assert entity_counts(data) == entities
  assert all(len(s.tags[c]) == len(s.words) for s in data for c in CONLL2003)
  assert not any(w == "-DOCSTART-" for s in data for w in s.words)


def test_conll2003_iob2_matches_iob1(conll2003, shared_data):
  iob2 = read_conll(os.path.join(shared_data, "conll2003", "iob2", "train.txt"), CONLL2003)
  assert [s.words for s in iob2] == [s.words for s in conll2003["train"]]
  assert [s.tags["pos"] for s in iob2] == [s.tags["pos"] for s in conll2003["train"]]
  assert entity_counts(iob2) == entity_counts(conll2003["train"])
  assert {t[:2] for s in iob2 for t in s.tags["ner"]} == {"B-", "I-", "O"}


def test_conll2003_first_sentence_and_single_column(shared_data):
  ner = read_conll(os.path.join(shared_data, "conll2003", "eng.testb"), {"ner": 3})
  assert ner[0] == Sentence(("SOCCER", "-", "JAPAN", "GET", "LUCKY", "WIN", ",", "CHINA", "IN", "SURPRISE", "DEFEAT",
                             "."), {"ner": ("O", "O", "I-LOC", "O", "O", "O", "O", "I-PER", "O", "O", "O", "O")})


@pytest.mark.parametrize("name,sentences,n_tokens", [("train.txt", 8936, 211727), ("test.txt", 2012, 47377)])
def test_conll2000_counts(shared_data, name, sentences, n_tokens):
  data = read_conll(os.path.join(shared_data, "conll2000", name), {"pos": 1, "chunk": 2})
  assert (len(data), tokens(data)) == (sentences, n_tokens)
  assert {t[2:] for s in data for t in s.tags["chunk"]} - {""} <= {"NP", "VP", "PP", "ADVP", "SBAR", "ADJP", "PRT",
                                                                    "CONJP", "INTJ", "LST", "UCP"}


@pytest.mark.parametrize("name,sentences,n_tokens,n_entities", [
    ("wnut17train.conll", 3394, 62730, 1975),
    ("emerging.dev.conll", 1009, 15733, 836),
    ("emerging.test.annotated", 1287, 23394, 1079),
])
def test_wnut17_counts(shared_data, name, sentences, n_tokens, n_entities):
  # The train file separates most sentences by a line holding only a tab: still a blank line.
  data = read_conll(os.path.join(shared_data, "wnut17", name), {"ner": 1}, separator="\t")
  assert (len(data), tokens(data)) == (sentences, n_tokens)
  assert sum(t.startswith("B-") for s in data for t in s.tags["ner"]) == n_entities


def test_ud_ewt_train(ud_train):
  assert (len(ud_train), tokens(ud_train)) == (12544, 204577)
  assert {t for s in ud_train for t in s.tags["upos"]} == {
      "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT", "SCONJ",
      "SYM", "VERB", "X"}


@pytest.mark.parametrize("name,sentences,words", [("dev", 2001, 25147), ("test", 2077, 25094)])
def test_ud_ewt_dev_test_xpos(shared_data, name, sentences, words):
  data = read_conllu(os.path.join(shared_data, "ud_en_ewt", f"en_ewt-ud-{name}.conllu"), column="xpos")
  assert (len(data), tokens(data)) == (sentences, words)
  xpos = {t for s in data for t in s.tags["xpos"]}
  assert "NNP" in xpos and "-LRB-" in xpos
  if name == "test":
    assert len(xpos) == 48 and "WP$" not in xpos


@pytest.mark.parametrize("split,size,counts", [
    ("train", 3257, {"anger": 1400, "joy": 708, "optimism": 294, "sadness": 855}),
    ("val", 374, {"anger": 160, "joy": 97, "optimism": 28, "sadness": 89}),
    ("test", 1421, {"anger": 558, "joy": 358, "optimism": 123, "sadness": 382}),
])
def test_tweeteval_emotion(shared_data, split, size, counts):
  root = os.path.join(shared_data, "tweeteval", "emotion")
  mapping = read_mapping(os.path.join(root, "mapping.txt"))  # no trailing newline
  assert mapping == {"0": "anger", "1": "joy", "2": "optimism", "3": "sadness"}
  data = read_paired_text_labels(os.path.join(root, f"{split}_text.txt"), os.path.join(root, f"{split}_labels.txt"),
                                 mapping)
  assert len(data) == size
  assert collections.Counter(x.label for x in data) == counts
  assert not any(x.text.endswith(" ") for x in data)


def test_tweeteval_sentiment_val_and_missing_train(shared_data):
  root = os.path.join(shared_data, "tweeteval", "sentiment")
  mapping = read_mapping(os.path.join(root, "mapping.txt"))
  data = read_paired_text_labels(os.path.join(root, "val_text.txt"), os.path.join(root, "val_labels.txt"), mapping)
  assert len(data) == 2000
  assert collections.Counter(x.label for x in data) == {"negative": 312, "neutral": 869, "positive": 819}
  with pytest.raises(UserError, match=r"sentiment/train_text\.txt: file not found$"):
    read_paired_text_labels(os.path.join(root, "train_text.txt"), os.path.join(root, "train_labels.txt"), mapping)


def test_tweeteval_hate_has_empty_tweets(shared_data):
  root = os.path.join(shared_data, "tweeteval", "hate")
  paths = os.path.join(root, "train_text.txt"), os.path.join(root, "train_labels.txt")
  with pytest.raises(UserError, match=r"hate/train_text\.txt:1468: expected non-empty text"):
    read_paired_text_labels(*paths)
  assert len(read_paired_text_labels(*paths, skip_empty=True)) == 9000 - 7


def test_tweeteval_emoji_mapping_has_extra_columns(shared_data):
  mapping = read_mapping(os.path.join(shared_data, "tweeteval", "emoji", "mapping.txt"))
  assert len(mapping) == 20 and mapping["0"] == "\u2764" and mapping["19"] == "\U0001F61C"


def test_ag_news_test(shared_data):
  root = os.path.join(shared_data, "ag_news")
  classes = read_label_list(os.path.join(root, "classes.txt"))
  assert classes == ["World", "Sports", "Business", "Sci/Tech"]
  data = read_text_classification(os.path.join(root, "test.csv"), (1, 2), 0, header=False,
                                  label_names={str(i + 1): name for i, name in enumerate(classes)},
                                  backslash_escapes=True)
  assert len(data) == 7600
  assert collections.Counter(x.label for x in data) == {name: 1900 for name in classes}
  assert data[0] == LabelledText("Fears for T N pension after talks Unions representing workers at Turner   Newall say "
                                 "they are 'disappointed' after talks with stricken parent firm Federal Mogul.",
                                 "Business")
  assert "A second team of rocketeers" in data[1].text  # "second\team": a lone backslash was a line break
  assert any("Oil Sets New Record $47 on Iraq Threat" in x.text for x in data)  # "\$" is a dollar sign
  assert not any("\\" in x.text for x in data)
  raw = read_text_classification(os.path.join(root, "test.csv"), (1, 2), 0, header=False)
  assert raw[1].text.count("\\") == 3 and raw[1].label == "4"


@pytest.fixture(scope="module")
def airline(shared_data):
  path = os.path.join(shared_data, "airline_tweets", "Tweets.csv")
  return (read_text_classification(path, ("text",), "airline_sentiment"),
          read_text_classification(path, ("text",), "negativereason"))


def test_airline_tweets(airline):
  sentiment, reason = airline
  assert len(sentiment) == len(reason) == 14640
  assert collections.Counter(x.label for x in sentiment) == {"negative": 9178, "neutral": 3099, "positive": 2363}
  assert [x.label is None for x in reason] == [x.label != "negative" for x in sentiment]
  assert sum(x.label is None for x in reason) == 5462
  reasons = collections.Counter(x.label for x in reason if x.label)
  assert len(reasons) == 10 and reasons["Customer Service Issue"] == 2910 and reasons["longlines"] == 178
  assert [x.text for x in sentiment] == [x.text for x in reason]
  assert sum("\n" in x.text for x in sentiment) > 0  # quoted multi-line tweets kept whole


# ---------------------------------------------------------------------------------------------------------------
# Small files: valid variants.

def write(tmp_path, name: str, content: str | bytes) -> str:
  path = tmp_path / name
  if isinstance(content, str):
    content = content.encode("utf-8")
  path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
  return str(path)


def test_conll_docstart_blanks_crlf_and_gzip(tmp_path):
  text = ("-DOCSTART- -X- O O\r\n\r\nEU NNP I-ORG\r\nrejects VBZ O\r\n\r\n\r\n"
          "-DOCSTART- -X- O O\r\n\r\nPeter NNP I-PER\r\n")
  for name in ("a.conll", "a.conll.gz"):
    data = read_conll(write(tmp_path, name, text), {"ner": 2})
    assert data == [Sentence(("EU", "rejects"), {"ner": ("I-ORG", "O")}), Sentence(("Peter",), {"ner": ("I-PER",)})]
    assert [s.where for s in data] == [f"{tmp_path / name}:3", f"{tmp_path / name}:9"]  # where each sentence starts


def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path):
  rows = ["# sent_id = 1", "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_", "1\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_",
          "2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_", "2.1\tgo\t_\t_\t_\t_\t_\t_\t_\t_",
          "3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No", ""]
  path = write(tmp_path, "a.conllu", "\n".join(rows))  # no blank line after the last sentence
  assert read_conllu(path) == [Sentence(("do", "n't", "go"), {"upos": ("AUX", "PART", "VERB")})]
  assert read_conllu(path)[0].where == f"{path}:2"
  assert read_conllu(path, "xpos")[0].tags == {"xpos": ("VBP", "RB", "VB")}


def test_text_classification_jsonl_and_label_names(tmp_path):
  path = write(tmp_path, "a.jsonl", '{"title": "A", "body": "b", "y": 1}\n\n{"title": "C", "body": "", "y": null}\n')
  assert read_text_classification(path, ("title", "body"), "y", label_names={"1": "one"}) == [
      LabelledText("A b", "one"), LabelledText("C", None)]
  assert [r.where for r in read_text_classification(path, ("title",), "y")] == [f"{path}:1", f"{path}:3"]


def test_mapping_and_label_list_variants(tmp_path):
  assert read_mapping(write(tmp_path, "m.txt", "0\tx\textra\t\n1\ty")) == {"0": "x", "1": "y"}
  assert read_label_list(write(tmp_path, "c.txt", "a\nb\n\n")) == ["a", "b"]


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one UserError naming the file, the line and what was expected.

def test_conll_wrong_column_count(tmp_path):
  path = write(tmp_path, "bad.conll", "EU NNP I-NP I-ORG\nrejects VBZ I-VP\n")
  with pytest.raises(UserError, match=r"bad\.conll:2: expected 4 columns \(word, pos, chunk, ner\), found 3$"):
    read_conll(path, CONLL2003)
  path = write(tmp_path, "short.conll", "EU\tNNP\n")
  with pytest.raises(UserError, match=r"short\.conll:1: expected 4 columns \(word, _, _, ner\), found 2$"):
    read_conll(path, {"ner": 3}, separator="\t")
  path = write(tmp_path, "empty_tag.conll", "EU\t\n")
  with pytest.raises(UserError, match=r"empty_tag\.conll:1: field 'ner' is empty"):
    read_conll(path, {"ner": 1}, separator="\t")


def test_conllu_nine_columns_and_bad_ids(tmp_path):
  path = write(tmp_path, "bad.conllu", "# c\n1\tdo\tdo\tAUX\tVBP\t_\t0\troot\t_\n")
  with pytest.raises(UserError, match=r"bad\.conllu:2: expected 10 tab-separated columns \(ID FORM .*\), found 9"):
    read_conllu(path)
  path = write(tmp_path, "ids.conllu", "1\ta\ta\tX\tX\t_\t0\troot\t_\t_\n1\tb\tb\tX\tX\t_\t0\troot\t_\t_\n")
  with pytest.raises(UserError, match=r"ids\.conllu:2: field 'ID': expected 2 .*blank line missing"):
    read_conllu(path)
  with pytest.raises(UserError, match=r"column: expected one of \['upos', 'xpos'\], found 'lemma'"):
    read_conllu(path, "lemma")


@pytest.mark.parametrize("name", ["a.conll", "a.conllu", "a.csv", "a_text.txt"])
def test_non_utf8_names_the_line(tmp_path, name):
  sep = b"," if name == "a.csv" else b"\t"  # a valid first line: a CSV is read line by line, in constant memory
  path = write(tmp_path, name, b"ok" + sep + b"O\n\xff" + sep + b"O\n")
  with pytest.raises(UserError, match=r"a(_text)?\.(conllu?|csv|txt):2: not valid UTF-8 \(byte 0xff\)"):
    if name == "a.conll":
      read_conll(path, {"ner": 1})
    elif name == "a.conllu":
      read_conllu(path)
    elif name == "a.csv":
      read_text_classification(path, (0,), 1, header=False)
    else:
      read_paired_text_labels(path, write(tmp_path, "l.txt", "0\n1\n"))


def test_csv_errors(tmp_path):
  path = write(tmp_path, "q.csv", 'text,label\n"fine",a\n"never closed,b\nmore\n')
  with pytest.raises(UserError, match=r"q\.csv row 2 \(line 3\): malformed CSV .*quote left unclosed"):
    read_text_classification(path, ("text",), "label")
  path = write(tmp_path, "m.csv", "text,sentiment\nhi,a\n")
  with pytest.raises(UserError, match=r"m\.csv:1: header: no column 'label' \(found columns: \['text', 'sentiment'\]"):
    read_text_classification(path, ("text",), "label")
  path = write(tmp_path, "f.csv", "text,label\nhi,a\nho\n")
  with pytest.raises(UserError, match=r"f\.csv row 2 \(line 3\): expected 2 fields \(text, label\), found 1"):
    read_text_classification(path, ("text",), "label")
  path = write(tmp_path, "e.csv", "text,label\nhi,a\n  ,b\n")
  with pytest.raises(UserError, match=r"e\.csv row 2 \(line 3\): text columns \['text'\]: expected non-empty text"):
    read_text_classification(path, ("text",), "label")
  assert len(read_text_classification(path, ("text",), "label", skip_empty=True)) == 1
  path = write(tmp_path, "n.csv", "hi,9\n")
  with pytest.raises(UserError, match=r"n\.csv row 1 \(line 1\): field '1': expected one of \['1', '2'\], found '9'"):
    read_text_classification(path, (0,), 1, header=False, label_names={"1": "a", "2": "b"})
  with pytest.raises(UserError, match=r"n\.csv row 1 \(line 1\): expected at least 3 fields"):
    read_text_classification(path, (0, 2), 1, header=False)


def test_paired_count_mismatch_and_bad_label(tmp_path):
  text = write(tmp_path, "t_text.txt", "a \nb \nc ")
  with pytest.raises(UserError, match=r"t_text\.txt has 3 lines but .*l_labels\.txt has 2; expected one label line"):
    read_paired_text_labels(text, write(tmp_path, "l_labels.txt", "0\n1\n"))
  with pytest.raises(UserError, match=r"m_labels\.txt:3: expected a label id in \['0', '1'\], found '7'"):
    read_paired_text_labels(text, write(tmp_path, "m_labels.txt", "0\n1\n7\n"), {"0": "x", "1": "y"})
  assert read_paired_text_labels(text, write(tmp_path, "ok_labels.txt", "0\n1\n1")) == [
      LabelledText("a", "0"), LabelledText("b", "1"), LabelledText("c", "1")]


@pytest.mark.parametrize("reader", [
    lambda p: read_conll(p, {"ner": 1}), read_conllu, lambda p: read_text_classification(p, ("text",), "label"),
    read_label_list, read_mapping, lambda p: read_paired_text_labels(p, p)])
def test_empty_and_missing_files(tmp_path, reader):
  for name in ("empty.csv", "empty.csv.gz"):
    with pytest.raises(UserError, match=r"empty\.csv(\.gz)?: no "):
      reader(write(tmp_path, name, ""))
  with pytest.raises(UserError, match=r"nope\.csv: file not found$"):
    reader(str(tmp_path / "nope.csv"))


def test_corrupt_gzip(tmp_path):
  (tmp_path / "b.conllu.gz").write_bytes(gzip.compress(b"1\ta\n")[:-6])
  with pytest.raises(UserError, match=r"b\.conllu\.gz: not a valid gzip file"):
    read_conllu(str(tmp_path / "b.conllu.gz"))


def test_text_pairs_from_columns_of_csv_and_jsonl(tmp_path):
  (tmp_path / "nli.csv").write_text("premise,hypothesis,label\nA man plays.,Someone plays.,entailment\n"
                                    "A dog runs.,,neutral\n")
  with pytest.raises(UserError, match=r"nli.csv row 2 \(line 3\): text columns \['hypothesis'\]: expected non-empty"):
    read_text_classification(tmp_path / "nli.csv", ("premise",), "label", pair_columns=("hypothesis",))
  kept = read_text_classification(tmp_path / "nli.csv", ("premise",), "label", pair_columns=("hypothesis",),
                                  skip_empty=True)
  assert [(r.text, r.pair, r.label) for r in kept] == [("A man plays.", "Someone plays.", "entailment")]
  (tmp_path / "nli.jsonl").write_text('{"p": "A", "h1": "B", "h2": "C", "y": 1}\n')
  rows = read_text_classification(tmp_path / "nli.jsonl", ("p",), "y", pair_columns=("h1", "h2"))
  assert [(r.text, r.pair, r.label) for r in rows] == [("A", "B C", "1")]
  assert read_text_classification(tmp_path / "nli.jsonl", ("p",), "y")[0].pair is None
