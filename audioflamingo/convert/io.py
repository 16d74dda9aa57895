"""Reading official checkpoints without trusting pickles and without holding them twice.

- AF1 `foundation.pt` / `chat.pt`: a torch pickle `{"model_state_dict": {...}}`, read with
  `weights_only=True` and memory-mapped (tensors are paged in as they are copied out).
- AF2 `safe_ckpt/`: `metadata.json` plus chunked `*.safetensors`, opened lazily: one tensor is
  materialised at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch

from audioflamingo.errors import ModelLoadError

WRAPPERS = ("model_state_dict", "state_dict", "model")


class TensorSource:
    """A read-only mapping key -> tensor over one checkpoint, loading tensors on demand."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._pickle: dict | None = None
        self._files: dict[str, Path] = {}
        if self.path.is_dir():
            self._index_safetensors()
        elif self.path.is_file():
            self._pickle = read_pickle(self.path)
        else:
            raise ModelLoadError(f"{self.path}: checkpoint not found")

    def _index_safetensors(self) -> None:
        from safetensors import safe_open

        files = sorted(self.path.glob("*.safetensors"))
        if not files:
            raise ModelLoadError(f"{self.path}: no *.safetensors chunks in this folder")
        meta = self.path / "metadata.json"
        listed = None
        if meta.is_file():  # {chunk name: [keys]} (or a list of chunk names): checked against the chunks
            raw = json.loads(meta.read_text())
            if isinstance(raw, dict) and all(isinstance(v, list) for v in raw.values()):
                listed = {k for v in raw.values() for k in v}
        for f in files:
            with safe_open(str(f), "pt") as h:
                for k in h.keys():
                    if k in self._files:
                        raise ModelLoadError(f"{f}: tensor {k} also in {self._files[k].name}")
                    self._files[k] = f
        if listed is not None and listed != set(self._files):
            missing = sorted(listed - set(self._files))[:5]
            raise ModelLoadError(f"{meta}: lists tensors the chunks do not hold, e.g. {missing}")

    def keys(self) -> list[str]:
        return list(self._pickle) if self._pickle is not None else list(self._files)

    def __contains__(self, key: str) -> bool:
        return key in (self._pickle if self._pickle is not None else self._files)

    def _need(self, key: str) -> None:
        if key not in self:
            raise ModelLoadError(f"{self.path}: tensor {key} missing (expected in this checkpoint layout)")

    def __getitem__(self, key: str) -> torch.Tensor:
        self._need(key)
        if self._pickle is not None:
            return self._pickle[key]
        from safetensors import safe_open

        with safe_open(str(self._files[key]), "pt") as h:
            return h.get_tensor(key)

    def shape(self, key: str) -> tuple[int, ...]:
        self._need(key)
        if self._pickle is not None:
            return tuple(self._pickle[key].shape)
        from safetensors import safe_open

        with safe_open(str(self._files[key]), "pt") as h:
            return tuple(h.get_slice(key).get_shape())

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for k in self.keys():
            yield k, self[k]


def read_pickle(path: Path) -> dict[str, torch.Tensor]:
    """A torch checkpoint as a flat key -> tensor dict; never executes pickled code."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - an unsafe or corrupt pickle: say which file and why
        raise ModelLoadError(
            f"{path}: cannot be read as a weights-only checkpoint ({str(err).splitlines()[0]})"
        ) from None
    for w in WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(w), dict):
            obj = obj[w]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path}: expected a state dict (optionally under {'/'.join(WRAPPERS)})")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}
