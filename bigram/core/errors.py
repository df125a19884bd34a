"""The one exception type the CLI turns into a one-line message and exit code 2."""


def require_positive(**options) -> None:
    """A BigramError for the first option (by its name, e.g. batch_size) that is not an integer >= 1."""
    for name, value in options.items():
        if value is not None and (not isinstance(value, int) or value <= 0):
            flag = "--" + name.replace("_", "-")
            raise BigramError(f"{flag} must be a positive integer, got {value}; pass a value >= 1")


class BigramError(Exception):
    """A problem with the user's input, stated with its fix.

    The message is one line: what is wrong, then what to do about it. The CLI
    prints it without a traceback and exits with `exit_code`.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(BigramError):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint.

    Not a mistake of the user's, so the CLI prints it without "error:"; the
    exit code is the shell's for the signal: 128 + signum (130, 143).
    """

    prefix = "interrupted"
