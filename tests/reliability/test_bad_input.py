"""Bad input through the command line: one line naming file, line/row and field, exit code 2, no traceback, and
nothing written as a checkpoint. Each case is a real `python -m mtl_jax.main` process (run two at a time)."""

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest
from runs import REPO

OK = json.dumps({"text": "fine", "labels": [0, 1, 2]})
TABLE_ARGS = ["--config=configs/three_task.py:smoke", "--config.data.validation=0.5"]

# A corpus-per-task config of our own: NER on a CoNLL file and topics from a CSV, both in the test's folder.
CORPUS_CONFIG = '''
import ml_collections
from configs import three_task

def get_config(arg=""):
  c = three_task.get_config("smoke")
  c.tasks = ml_collections.ConfigDict()
  c.tasks.ner = dict(kind="tagging", scheme="IOB2", data=dict(format="conll", columns=dict(ner=1), tag="ner",
                                                              train="train.conll", validation="dev.conll"))
  c.tasks.topic = dict(kind="classification", data=dict(format="csv", text_columns=("text",), label_column="label",
                                                        train="topics.csv", validation="0.5"))
  c.data.train, c.data.validation, c.data.label_order = "", "", ()
  c.train.batch_size = 2
  return c
'''
CONLL = "EU B-ORG\nrejects O\n\nPeter B-PER\nsaid O\n\nBonn B-LOC\nwon O\n\n"
TOPICS = "text,label\nrates rise,business\nteam wins,sports\nshares fall,business\ncup final,sports\n"
CORPUS_FILES = {"corpus_config.py": CORPUS_CONFIG, "train.conll": CONLL, "dev.conll": CONLL, "topics.csv": TOPICS}
CORPUS_ARGS = ["--config={dir}/corpus_config.py", "--config.data.root={dir}"]

# (case, files to write, arguments ({dir}: the case's folder), the one expected line).
CASES = [
    ("ragged labels", {"t.jsonl": f'{OK}\n{{"text": "a", "labels": [0, 1]}}\n'}, [],
     "{dir}/t.jsonl:2: field 'labels': expected 3 entries (sentiment, urgency, topic), found 2: [0, 1]"),
    ("label out of range", {"t.jsonl": f'{OK}\n{{"text": "a", "labels": [0, 1, 7]}}\n'}, [],
     "{dir}/t.jsonl:2: field 'labels'[2] (task 'topic'): expected a class id in 0..3, a label name of "
     "['billing', 'technical', 'shipping', 'account'], or -1/null; found 7"),
    ("non-integer label", {"t.jsonl": f'{OK}\n{{"text": "a", "labels": [0.5, 1, 2]}}\n'}, [],
     "{dir}/t.jsonl:2: field 'labels'[0] (task 'sentiment'): expected a class id in 0..2, a label name of "
     "['negative', 'neutral', 'positive'], or -1/null; found 0.5"),
    ("weight of the wrong length", {"t.jsonl": f'{OK}\n{{"text": "a", "labels": [0, 1, 2], "weight": [1, 2]}}\n'},
     [], "{dir}/t.jsonl:2: field 'weight': expected a finite number >= 0 or a list of 3 such numbers, found [1, 2]"),
    ("negative weight", {"t.jsonl": f'{OK}\n{{"text": "a", "labels": [0, 1, 2], "weight": -0.5}}\n'}, [],
     "{dir}/t.jsonl:2: field 'weight': expected a finite number >= 0 or a list of 3 such numbers, found -0.5"),
    ("missing text column", {"t.csv": 'body,labels\nhello,"[0, 1, 2]"\n'}, [],
     "{dir}/t.csv:1: header: no 'text' column"),
    ("empty text", {"t.jsonl": f'{OK}\n{{"text": " ", "labels": [0, 1, 2]}}\n'}, [],
     "{dir}/t.jsonl:2: field 'text': expected a non-empty string, found ' '"),
    ("invalid JSON line", {"t.jsonl": f'{OK}\n{{"text": "a", "labels": [0, 1, 2]\n'}, [],
     "{dir}/t.jsonl:2: invalid JSON at column"),
    ("CSV with an unclosed quote", {"t.csv": 'text,labels\nok,"[0, 1, 2]"\n"unclosed,"[0, 1, 2]"\n'}, [],
     "{dir}/t.csv row 2 (line 3): malformed CSV"),
    ("non-UTF-8 bytes", {"t.jsonl": f'{OK}\n{{"text": "caf\xe9", "labels": [0, 1, 2]}}\n'.encode("latin-1")}, [],
     "{dir}/t.jsonl:2: not valid UTF-8 (byte 0xe9); save the file as UTF-8"),
    ("empty file", {"t.jsonl": ""}, [], "{dir}/t.jsonl: no rows"),
    ("table columns inconsistent with the tasks", {"t.csv": "text,sentiment,urgency\nhi,0,1\n"}, [],
     "{dir}/t.csv:1: header: expected a 'labels' column or one column per task"),
    ("CoNLL line with the wrong number of columns", {**CORPUS_FILES, "train.conll": "EU B-ORG\nrejects\n\n"},
     CORPUS_ARGS, "{dir}/train.conll:2: expected 2 columns (word, ner), found 1"),
    ("unknown tag in a dev file", {**CORPUS_FILES, "dev.conll": "EU B-ORG\nsaid O\n\nParis B-GPE\n\n"},
     CORPUS_ARGS, "{dir}/dev.conll:4: word 1 'Paris': label 'B-GPE' of task 'ner' does not occur in the training data"),
    ("misspelt config key", {}, ["--config.train.stpes=3"],
     "--config.train.stpes: no such config field (did you mean 'steps'?)"),
    ("misspelt task field", {}, ["--config.tasks.topic.wieght=2"],
     "--config.tasks.topic.wieght: no such config field"),
    ("encoder directory without weights", {"enc/config.json": "{}"}, ["--config.encoder.name={dir}/enc"],
     "{dir}/enc/model.safetensors: file not found"),
    ("config value out of range", {}, ["--config.encoder.pooling=max"],
     "config.encoder.pooling: expected one of ('cls', 'mean'), found 'max'"),
    ("batch too large for memory", {}, ["--config.train.batch_size=1048576"],
     "config.train.batch_size: 1048576 examples of up to 64 tokens need about"),
    ("eval batch too large for memory", {}, ["--config.train.eval_batch_size=4194304"],
     "config.train.eval_batch_size: 4194304 texts, as 2097152 packed rows of 64 tokens, need about"),
    ("incomplete multi-process flags", {}, ["--coordinator_address=127.0.0.1:1234"],
     "--num_processes, --process_id: required with --coordinator_address"),
    ("peer timeout shorter than two heartbeats", {}, ["--coordinator_address=127.0.0.1:1234", "--num_processes=1",
                                                      "--process_id=0", "--peer_timeout=1"],
     "--peer_timeout: expected at least 4 seconds, found 1"),
    ("config value of the wrong type", {}, ["--config.train.steps=abc"],
     "flag --config.train.steps=abc: invalid literal for int()"),
    ("missing config file", {}, ["--config=configs/missing.py"], "No such file or directory: 'configs/missing.py'"),
    ("unknown config argument", {}, ["--config=configs/three_task.py:bogus"], "unknown config argument 'bogus'"),
]


def run_case(case, root) -> tuple[str, subprocess.CompletedProcess]:
  name, files, args, _ = case
  folder = os.path.join(root, name.replace(" ", "_"))
  for rel, content in files.items():
    path = os.path.join(folder, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
      f.write(content if isinstance(content, bytes) else content.encode("utf-8"))
  table = [f"--config.data.train={folder}/{t}" for t in ("t.jsonl", "t.csv") if t in files]
  base = TABLE_ARGS if not any(a.startswith("--config=") for a in args) else []
  argv = [a.format(dir=folder) for a in (*base, *table, *args)]
  out = subprocess.run([sys.executable, "-m", "mtl_jax.main", f"--workdir={folder}/run", *argv],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
  return folder, out


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("bad_input"))
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    return dict(zip([c[0] for c in CASES], pool.map(lambda c: run_case(c, root), CASES)))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_no_checkpoint(case, results):
  folder, out = results[case[0]]
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert out.returncode == 2 and len(lines) == 1, out.stderr[-3000:]
  assert lines[0].startswith("error: ") and case[3].format(dir=folder) in lines[0], lines[0]
  assert "Traceback" not in out.stderr
  saved = [os.listdir(d) for d in (f"{folder}/run/checkpoints", f"{folder}/run/best") if os.path.isdir(d)]
  assert not any(saved)
