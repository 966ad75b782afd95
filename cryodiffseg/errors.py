"""The one exception type a user is meant to see.

The command line prints its message and exits non-zero; any other exception is a bug.
"""


class CryoDiffSegError(Exception):
    """A problem with the user's input or environment, explained in the message."""
