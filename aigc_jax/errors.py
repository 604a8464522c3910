"""The errors a person running a command can fix: a bad config value or flag, a missing or
damaged file, a dataset that cannot be had. Entry points print their message alone and
exit with status 2 (experiments/cli.py); set AIGC_TRACEBACK=1 to see the traceback too.
Any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Bad input; the message names the problem and the fix."""


class InvalidInputError(UserError, ValueError):
  """A config value, flag or input file that cannot work."""


class MissingInputError(UserError, FileNotFoundError):
  """A file or folder a command needs is not there."""
