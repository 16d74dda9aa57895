"""Reading the files a model folder or a checkpoint is made of, with one-line errors.

Every failure is a `ModelLoadError` whose message is `path: problem`: a truncated download, a file
of random bytes, a hand-edited JSON with a typo or a pickle where tensors were expected must say
which file is wrong, not print a traceback from deep inside a library.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from pathlib import Path
from typing import Any

from audioflamingo.errors import ModelLoadError

# safetensors refuses headers over 100 MB; a larger claimed length means the file is something else.
MAX_HEADER = 100_000_000
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def missing_reason(path: str | os.PathLike) -> str:
    """Why `path` cannot be opened as a file: missing, a directory, a symlink loop, a broken link."""
    p = Path(path)
    try:
        os.stat(p)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop (the link points back to itself)"
        if p.is_symlink():
            return f"broken symlink (points to {os.readlink(p)}, which does not exist)"
        if err.errno == errno.EACCES:
            return "permission denied"
        return "file not found"
    if p.is_dir():
        return "is a directory, not a file"
    return ""


def require_file(path: str | os.PathLike, what: str = "") -> Path:
    """`path` if it is a readable file, else a ModelLoadError saying why not."""
    p = Path(path)
    reason = missing_reason(p)
    if reason:
        raise ModelLoadError(f"{p}: {'missing' if reason == 'file not found' else reason}{what}")
    return p


def read_json(path: str | os.PathLike, what: str = "") -> Any:
    """A JSON file's content; a missing file, invalid UTF-8 or invalid JSON is one line naming it."""
    p = require_file(path, what)
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ModelLoadError(f"{p}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ModelLoadError(f"{p}: cannot be read ({err.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{p}: invalid JSON at line {err.lineno} column {err.colno} ({err.msg})") from None


def check_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a safetensors file, after checking that it is one and that the file holds
    every byte the header promises (so a truncated download is named as such)."""
    p = require_file(path)
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelLoadError(
                f"{p}: truncated or empty ({size} bytes; a safetensors file starts with an 8-byte header length)"
            )
        n = struct.unpack("<Q", head)[0]
        if n == 0 or n > MAX_HEADER:
            raise ModelLoadError(f"{p}: not a safetensors file (no valid header; {size} bytes)")
        if 8 + n > size:
            raise ModelLoadError(
                f"{p}: truncated (the header needs {n} bytes, the file holds {size - 8} after its length field)"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{p}: corrupt header (not valid JSON: {str(err).splitlines()[0]})") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{p}: corrupt header (not a JSON object)")
    data = size - 8 - n
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = (int(x) for x in t["data_offsets"])
            count = 1
            for d in t["shape"]:
                count *= int(d)
            width = DTYPE_BYTES.get(t["dtype"])
        except (TypeError, KeyError, ValueError):
            raise ModelLoadError(f"{p}: corrupt header (tensor {name} has no valid dtype/shape/data_offsets)") from None
        if width is not None and not 0 <= start <= end == start + count * width:
            raise ModelLoadError(f"{p}: corrupt header (tensor {name}'s offsets do not match its shape)")
        if end > data:
            raise ModelLoadError(
                f"{p}: truncated (tensor {name} ends at byte {end} of the data, the file holds {data})"
            )
    return header


def torch_load(path: str | os.PathLike, **kw) -> Any:
    """`torch.load(weights_only=True)`: tensors and plain containers only. A pickle of anything else
    is refused without running it, and said so in one line; so is a truncated or corrupt file."""
    import pickle

    import torch

    p = require_file(path)
    try:
        return torch.load(str(p), map_location="cpu", weights_only=True, **kw)
    except pickle.UnpicklingError:
        raise ModelLoadError(
            f"{p}: refused: it holds pickled Python objects, not only tensors (it was not "
            "run; only weights-only files are loaded)"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, struct.error) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"{p}: unreadable or truncated torch file ({first[:200]})") from None
