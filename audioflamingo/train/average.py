"""Weight averaging ("model soup"): the element-wise mean of models fine-tuned from one start.

Two checkpoints of one run that trade skills against each other (the default model's chat stage
keeps few-shot use, its chat-more stage gains dialogue) often average to a model that keeps most of
both, because they lie in one basin of the loss. Only models with the same config, tokenizer and
tensor names/shapes can be averaged; anything else is refused before a byte is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from audioflamingo.atomic import new_directory
from audioflamingo.errors import ModelLoadError
from audioflamingo.model.flamingo import CONFIG_NAME, WEIGHTS_NAME as WEIGHTS

# Copied from the first model; they must be byte-identical across models (or absent from all).
SIDE_FILES = (
    CONFIG_NAME,
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


# config.json keys that are training settings, not architecture: checkpoints of one run differ in them
# (the window curriculum: stage-pretrain has max_windows 3, final 30). The output keeps the largest, so
# it reads as many windows as any of its parts was trained on.
TRAINING_KEYS = (("window", "max_windows"),)


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _normalised(config: dict) -> dict:
    from audioflamingo.config import AudioFlamingoConfig

    try:
        return AudioFlamingoConfig.from_dict(dict(config)).to_dict()
    except TypeError:  # an unknown block key: compared as written, so the refusal names it
        return config


def merged_config(dirs: list[Path], blobs: list[bytes]) -> tuple[dict, dict[str, list]]:
    """The output's config and the training settings that differed ({"window.max_windows": [3, 30]}).
    Any other difference is refused, naming the first differing key."""
    # Compared as parsed, so a key one file leaves out and another sets to its default is no difference.
    configs = [_normalised(json.loads(b)) for b in blobs]
    flats = [_flat(c) for c in configs]
    allowed = {".".join(k) for k in TRAINING_KEYS}
    differing: dict[str, list] = {}
    for d, f in zip(dirs[1:], flats[1:]):
        for key in sorted(set(f) | set(flats[0])):
            if f.get(key) == flats[0].get(key):
                continue
            if key in allowed:
                differing[key] = [fl.get(key) for fl in flats]
                continue
            raise ModelLoadError(
                f"{d / CONFIG_NAME}: {key} is {f.get(key)!r}, but {flats[0].get(key)!r} in {dirs[0] / CONFIG_NAME}; "
                "only models of one architecture and tokenizer can be averaged"
            )
    merged = json.loads(blobs[0])
    for block, key in TRAINING_KEYS:
        name = f"{block}.{key}"
        if name in differing:
            merged[block][key] = max(differing[name])
    return merged, differing


def _check_same_side_files(dirs: list[Path]) -> list[str]:
    present = []
    for name in SIDE_FILES:
        blobs = [(d / name).read_bytes() if (d / name).is_file() else None for d in dirs]
        if all(b is None for b in blobs):
            continue
        for d, b in zip(dirs[1:], blobs[1:]):
            if b != blobs[0]:
                what = "is missing" if b is None else "differs"
                if name == CONFIG_NAME and b is not None and blobs[0] is not None:
                    continue  # compared key by key (merged_config), which names what differs
                raise ModelLoadError(
                    f"{d / name}: {what} from {dirs[0] / name}; only models of one "
                    "architecture and tokenizer can be averaged"
                )
        present.append(name)
    if CONFIG_NAME not in present:
        raise ModelLoadError(f"{dirs[0]}: no {CONFIG_NAME}; expected a model directory")
    return present


def average_state(dirs: list[Path], weights: list[float]) -> tuple[dict[str, torch.Tensor], dict]:
    """Weighted mean of each tensor, accumulated in float64 and cast back to its stored dtype."""
    from safetensors import safe_open

    from audioflamingo.files import check_safetensors

    files = [d / WEIGHTS for d in dirs]
    for f in files:
        if not f.is_file():
            raise ModelLoadError(f"{f}: not found; expected a model directory with {WEIGHTS}")
        check_safetensors(f)  # truncated or foreign: one line naming it, before any work
    with safe_open(str(files[0]), framework="pt") as first:
        names = list(first.keys())
        keys = set(names)
        metadata = first.metadata() or {}  # keeps the tied-weights note that load_model needs
        acc = {k: first.get_tensor(k) for k in names}
    dtypes = {k: t.dtype for k, t in acc.items()}
    acc = {k: t.to(torch.float64) * weights[0] if t.is_floating_point() else t for k, t in acc.items()}
    for f, w in zip(files[1:], weights[1:]):
        with safe_open(str(f), framework="pt") as other:
            if set(other.keys()) != keys:
                diff = sorted(set(other.keys()) ^ keys)
                raise ModelLoadError(f"{f}: tensor names differ from {files[0]} ({len(diff)}, e.g. {diff[0]})")
            for k in names:
                t = other.get_tensor(k)
                if t.shape != acc[k].shape or t.dtype != dtypes[k]:
                    raise ModelLoadError(
                        f"{f}: {k} is {tuple(t.shape)} {t.dtype}, but {tuple(acc[k].shape)} {dtypes[k]} in {files[0]}"
                    )
                if t.is_floating_point():
                    acc[k] += t.to(torch.float64) * w
                elif not torch.equal(t, acc[k]):
                    raise ModelLoadError(f"{f}: integer tensor {k} differs from {files[0]}; cannot average it")
    return {k: t.to(dtypes[k]).contiguous() for k, t in acc.items()}, metadata


def average_models(models: list[str | Path], out: str | Path, weights: list[float] | None = None) -> dict:
    """Write the (weighted) mean of `models` as a model directory at `out` (which must not exist);
    a refusal or a crash leaves nothing behind."""
    from safetensors.torch import save_file

    dirs = [Path(m) for m in models]
    if len(dirs) < 2:
        raise ModelLoadError("average needs at least two model directories")
    for d in dirs:
        if not d.is_dir():
            raise ModelLoadError(f"{d}: not a model directory")
    weights = [1.0] * len(dirs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(dirs) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ModelLoadError(f"--weights: need {len(dirs)} non-negative numbers with a positive sum, got {weights}")
    weights = [w / sum(weights) for w in weights]
    with new_directory(out) as tmp:
        side = _check_same_side_files(dirs)
        config, training = merged_config(dirs, [(d / CONFIG_NAME).read_bytes() for d in dirs])
        state, metadata = average_state(dirs, weights)
        save_file(state, str(tmp / WEIGHTS), metadata=metadata)
        for name in side:
            if name == CONFIG_NAME:
                (tmp / name).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
            else:
                shutil.copyfile(dirs[0] / name, tmp / name)
    return {
        "training_settings_differing": {k: {"values": v, "kept": max(v)} for k, v in training.items()},
        "out": str(out),
        "models": [str(d) for d in dirs],
        "weights": [round(w, 6) for w in weights],
        "tensors": len(state),
        "parameters": sum(t.numel() for t in state.values()),
    }
