"""Optional dependencies: what needs them, and the one line a user sees when one is missing.

The core install runs caption/ask/classify/chat/train; plots, caption metrics, the HTTP server and
approximate-nearest-neighbour indexes each need a package most users never touch, so they are
extras of pyproject.toml (`pip install 'audioflamingo[report]'`, or `[all]` for every one).
"""

from __future__ import annotations

import importlib

from audioflamingo.errors import AudioFlamingoError

# import name -> (extra, what needs it)
EXTRAS = {
    "matplotlib": ("report", "eval report's plots"),
    "pycocoevalcap": ("eval", "caption metrics (CIDEr-D, SPICE, METEOR)"),
    "fastapi": ("serve", "audioflamingo serve"),
    "uvicorn": ("serve", "audioflamingo serve"),
    "faiss": ("retrieval", "retrieval datastores (index, --rag)"),
}


class MissingExtra(AudioFlamingoError):
    """An optional package a command needs is not installed."""


def require(module: str, extra: str | None = None):
    """Import `module` or raise `MissingExtra` naming the pip extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        extra_name, what = EXTRAS.get(top, (extra or "all", module))
        raise MissingExtra(
            f"{what} needs the '{top}' package, which is not installed: "
            f"pip install 'audioflamingo[{extra or extra_name}]'"
        ) from None
