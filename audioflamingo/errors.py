"""User-facing errors: each one renders as a single line naming the file and the problem."""


class AudioFlamingoError(Exception):
    """Base class; the CLI prints `str(err)` and exits non-zero, with no traceback."""


class AudioInputError(AudioFlamingoError):
    def __init__(self, path: str, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class ModelLoadError(AudioFlamingoError):
    pass
