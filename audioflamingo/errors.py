"""User-facing errors: each one renders as a single line naming the file and the problem."""


class AudioFlamingoError(Exception):
    """Base class; the CLI prints `str(err)` and exits non-zero, with no traceback."""


class AudioInputError(AudioFlamingoError):
    def __init__(self, path: str, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class ModelLoadError(AudioFlamingoError):
    pass


class UsageError(AudioFlamingoError):
    """The command line itself is wrong (a missing option, an impossible combination): exit code 2,
    as argparse's own usage errors; every other error (bad input, a failed run) exits 1."""
