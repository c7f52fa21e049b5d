"""TensorFlow Datasets as a corpus source: `format: "tfds"` reads a dataset already prepared on disk.

The optional extra `pip install 'mtl_jax[tfds]'` brings tensorflow-datasets (no TensorFlow); it is imported only when
a tfds spec is read. Nothing is ever downloaded or generated here: the dataset's files are opened as they are
(`tfds.builder`'s read-only path, without the dataset's own code), and read through `tfds.data_source`'s random
access, which needs them stored as array_record or parquet. A dataset stored as tfrecord (the `tfds build`
default) is read with tf.data only when tensorflow is installed.

Spec fields (besides the corpus ones, see `corpora`):
  dataset      "name", "name/config" or "name/config:version", as `tfds.builder` takes it.
  data_dir     the TFDS data dir it was prepared in (default: `config.data.root`/tfds); relative to the data root.
  train        a TFDS split ("train", "train[:90%]"); validation / test likewise, or a fraction of train.
  text_columns text features, joined by a space (default ("text",)); label_column: the task's label feature, a
               ClassLabel (label names from its `names`; -1 is a missing label), a Text or an integer.
  words        for tagging: the Sequence(Text) feature of words; `tag`: the task's Sequence(ClassLabel) (or
               Sequence(Text)) feature, one tag per word.
"""

import importlib
import importlib.util
import os
from collections.abc import Iterator

from mtl_jax.errors import UserError

INSTALL = "pip install 'mtl_jax[tfds]'"
CHUNK = 1024  # examples per random-access read


def import_tfds():
  """The tensorflow_datasets module, or a UserError naming the extra to install."""
  try:
    return importlib.import_module("tensorflow_datasets")
  except ImportError as e:
    raise UserError(f"format 'tfds' needs tensorflow-datasets ({e}): {INSTALL}") from None


def data_dir(spec: dict, root: str) -> str:
  """The spec's `data_dir` (~ expanded; relative paths under the data root), default <root>/tfds."""
  path = os.path.expanduser(spec.get("data_dir") or "tfds")
  return path if os.path.isabs(path) else os.path.join(root, path)


def prepare_hint(name: str, where: str) -> str:
  return (f"prepare it beforehand, stored as array_record: `tfds build {name} --data_dir={where} "
          f"--file_format=array_record` (the tfds CLI needs tensorflow), or in Python "
          f"`tfds.builder('{name}', data_dir='{where}', file_format='array_record').download_and_prepare()`")


def open_builder(name: str, where: str):
  """A read-only builder for the prepared files of `name` in data dir `where`; never downloads."""
  tfds = import_tfds()
  try:
    return tfds.core.read_only_builder.builder_from_files(name, data_dir=where)
  except tfds.core.DatasetNotFoundError:
    raise UserError(f"tfds dataset '{name}' is not prepared in data_dir {where} (nothing is downloaded here): "
                    f"{prepare_hint(name, where)}") from None


def split_examples(builder, name: str, split: str, where: str) -> Iterator[dict]:
  """The decoded examples (dicts of numpy values) of a split, sliced or summed ("train[:90%]", "train+test").

  Slices are resolved here, over whole splits read with random access: tfds 4.9.10's parquet source ignores them.
  """
  tfds = import_tfds()
  random_access = builder.info.available_file_formats() & set(tfds.core.FileFormat.with_random_access())
  try:
    if not random_access:
      if importlib.util.find_spec("tensorflow") is None:
        raise UserError(f"tfds dataset '{name}' in {where} is stored as {builder.info.file_format.value}, which "
                        f"needs tensorflow to read: {prepare_hint(name, where)}, or pip install tensorflow-cpu")
      return iter(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
    parts = tfds.core.ReadInstruction.from_spec(split).to_absolute(builder.info.splits)
    sources = {p.splitname: builder.as_data_source(split=p.splitname) for p in parts}
  except (ValueError, KeyError, AssertionError) as e:  # tfds's bad split names and slices
    reason = " ".join(str(e).split())
    raise UserError(f"tfds:{name}: cannot read split {split!r} (splits: {list(builder.info.splits)}): "
                    f"{reason}") from None
  for split_name, source in sources.items():  # tfds 4.9.10's parquet writer drops rows past the first 100 per shard
    if len(source) != (expected := builder.info.splits[split_name].num_examples):
      raise UserError(f"tfds dataset '{name}' in {where}: split {split_name!r} holds {len(source)} examples but its "
                      f"dataset_info.json says {expected}; the files are incomplete: {prepare_hint(name, where)}")
  ranges = [(sources[p.splitname], range(len(sources[p.splitname]))[p.from_:p.to]) for p in parts]
  return (example for source, indices in ranges for start in range(0, len(indices), CHUNK)
          for example in source.__getitems__(indices[start:start + CHUNK]))  # batched reads: ~8x faster than one by one


def feature(features, key: str, name: str):
  """The feature `key` of the dataset, or a UserError listing the features there are."""
  if key not in features:
    raise UserError(f"tfds:{name}: no feature {key!r}; the dataset has {sorted(features.keys())}")
  return features[key]


def text_feature(features, key: str, name: str, sequence: bool = False):
  """Checks that `key` is a Text feature (or a Sequence of Text, for words)."""
  tfds = import_tfds()
  spec = feature(features, key, name)
  inner = getattr(spec, "feature", None) if sequence else spec
  if not isinstance(inner, tfds.features.Text):
    raise UserError(f"tfds:{name}: feature {key!r} is {spec}, expected {'a Sequence of ' if sequence else ''}Text")


def decode_text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def value_decoder(spec, key: str, name: str):
  """value -> label name or None: a ClassLabel's names (-1 = missing), a Text ("" = missing), an integer's digits."""
  names = getattr(spec, "names", None)
  if names is None:
    return lambda value: decode_text(value) or None

  def decode(value):
    index = int(value)
    if index == -1:
      return None
    if not 0 <= index < len(names):
      raise UserError(f"tfds:{name}: feature {key!r} has class index {index}, outside its {len(names)} names")
    return names[index]
  return decode


def sequence_decoder(spec, key: str, name: str):
  """The element decoder of a Sequence feature (of ClassLabel or Text)."""
  inner = getattr(spec, "feature", None)
  if inner is None:
    raise UserError(f"tfds:{name}: feature {key!r} is {spec}, expected a Sequence (one value per word)")
  return value_decoder(inner, key, name)


def example_at(name: str, split: str, index: int) -> str:
  """Where a record comes from, as readers' "file:line": `tfds:name split example N` (1-based, within the split)."""
  return f"tfds:{name} {split} example {index + 1}"


def read_texts(name: str, where: str, split: str, text_columns, label_columns: dict[str, str],
               pair_columns=()) -> list[tuple]:
  """(text, {task: label or None}, where) of one split; text = the text features joined by a space, or with
  `pair_columns` (text, pair): a text pair, the pair features joined likewise (NLI: premise, hypothesis)."""
  builder = open_builder(name, where)
  features = builder.info.features
  for key in (*text_columns, *pair_columns):
    text_feature(features, key, name)
  decoders = {t: (key, value_decoder(feature(features, key, name), key, name)) for t, key in label_columns.items()}
  records = []
  for i, example in enumerate(split_examples(builder, name, split, where)):
    text = " ".join(decode_text(example[key]) for key in text_columns)
    if pair_columns:
      text = (text, " ".join(decode_text(example[key]) for key in pair_columns))
    labels = {t: decode(example[key]) for t, (key, decode) in decoders.items()}
    records.append((text, labels, example_at(name, split, i)))
  return records


def read_words(name: str, where: str, split: str, words: str, tags: dict[str, str]) -> list[tuple]:
  """(words, {task: tags}, where) of one split, one tag per word for each task; empty sentences are dropped."""
  builder = open_builder(name, where)
  features = builder.info.features
  text_feature(features, words, name, sequence=True)
  decoders = {t: (key, sequence_decoder(feature(features, key, name), key, name)) for t, key in tags.items()}
  records = []
  for i, example in enumerate(split_examples(builder, name, split, where)):
    sentence = tuple(decode_text(w) for w in example[words])
    if not sentence:
      continue
    labels = {t: tuple(decode(v) for v in example[key]) for t, (key, decode) in decoders.items()}
    for t, values in labels.items():
      if len(values) != len(sentence) or None in values:
        raise UserError(f"{example_at(name, split, i)}: {len(sentence)} words but feature {tags[t]!r} has "
                        f"{len(values)} tags (or a missing one)")
    records.append((sentence, labels, example_at(name, split, i)))
  return records
