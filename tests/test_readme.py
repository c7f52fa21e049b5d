"""README's config reference is the schema's: a field added, renamed or re-documented without README fails here."""

import os

from runs import REPO

from mtl_jax import schema


def test_readme_config_reference_is_the_schemas():
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  assert schema.reference_markdown().strip() in readme
