"""The one exception type a user is meant to see.

The command line prints its message and exits non-zero; any other exception is a bug.
"""


class CryoDiffSegError(Exception):
    """A problem with the user's input or environment, explained in the message."""


def library_reason(exc: BaseException) -> str:
    """A library's error as one clause of our sentence: its first line, never advice to run a file's code.

    torch's refusals of pickled objects suggest ``weights_only=False``, which executes the file.
    """
    import pickle

    chain = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(e, pickle.UnpicklingError) for e in chain) or "weights_only" in str(exc):
        return "the file holds more than tensors and was not loaded (loading it could run code)"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__).rstrip(".")
