"""The one exception type for mistakes a user can fix (bad files, bad config, bad input sets).

The command line prints such an error as a single line and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class SetaeError(Exception):
    """A user-facing error: the message names the file or item and what is wrong with it."""
