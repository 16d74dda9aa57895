"""The closed label set of `classify`, cleaned before it is scored."""

from __future__ import annotations

import warnings
from typing import Sequence


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Labels without blanks and without repeats (the first of each kept, in order).

    A label given twice would be scored twice and the softmax over the set would split its
    probability between the copies, so a clear winner could rank below a rival; repeats are merged
    and the merge is said (a warning naming them), not silent."""
    out: list[str] = []
    repeated: list[str] = []
    for label in labels:
        label = label.strip()
        if not label:
            continue
        if label in out:
            if label not in repeated:
                repeated.append(label)
            continue
        out.append(label)
    if not out:
        raise ValueError("classify needs at least one label")
    if repeated:
        warnings.warn(f"duplicate label(s) merged, each scored once: {', '.join(repeated)}", stacklevel=3)
    return out
