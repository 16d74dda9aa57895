"""A reader for Qt binary resource bundles (.rcc), enough to list and extract files: gcompris-qt-data
ships its recordings inside them.

Layout (all integers big-endian): a "qres" header with the format version and the offsets of the
tree, the data and the names; the tree is an array of fixed-size nodes (name offset, flags, then
child count and first child for a folder, or locale and data offset for a file, then a
modification time from version 2 on); a name is a length, a hash and UTF-16 text; a file's data is
a length then the bytes, zlib-compressed (after a 4-byte size) when flag 1 is set.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_COMPRESSED, _DIRECTORY, _ZSTD = 1, 2, 4


def read_rcc(path: str | Path) -> dict[str, bytes]:
    """Every file in the bundle, by its path inside it ("gcompris/data/voices/dog.ogg" ...)."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource bundle")
    version, tree, data, names = struct.unpack(">IIII", buf[4:20])
    node_size = 14 + (8 if version >= 2 else 0)

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", buf[names + offset : names + offset + 2])
        return buf[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    out: dict[str, bytes] = {}

    def walk(index: int, prefix: str, depth: int = 0) -> None:
        if depth > 64:
            raise ValueError(f"{path}: resource tree too deep")
        at = tree + index * node_size
        name_off, flags = struct.unpack(">IH", buf[at : at + 6])
        here = prefix + ("/" if prefix else "") + name(name_off) if index else ""
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", buf[at + 6 : at + 14])
            for child in range(first, first + count):
                walk(child, here, depth + 1)
            return
        (off,) = struct.unpack(">I", buf[at + 10 : at + 14])
        (size,) = struct.unpack(">I", buf[data + off : data + off + 4])
        blob = buf[data + off + 4 : data + off + 4 + size]
        if flags & _ZSTD:
            return  # not needed for the audio, which Qt stores uncompressed
        out[here] = zlib.decompress(blob[4:]) if flags & _COMPRESSED else blob

    walk(0, "")
    return out
