"""The one error type for mistakes a user can fix (data, config, paths).

Entry points catch it, print its message on one line and exit with code 2; anything else is a bug and keeps its
traceback.
"""


class UserError(Exception):
  """A problem in the user's data, config or files; the message names where and what was expected."""


def location(path, line: int | None = None, row: int | None = None) -> str:
  """`file:line` or `file row N (line L)`, the prefix of every data error."""
  where = str(path)
  if row is not None:
    where += f" row {row}"
    if line is not None:
      where += f" (line {line})"
  elif line is not None:
    where += f":{line}"
  return where
