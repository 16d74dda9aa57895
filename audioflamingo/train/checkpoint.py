"""Checkpoints: a usable model directory plus everything needed to resume exactly.

    <output_dir>/checkpoints/step-00000040/
        config.json, model.safetensors, tokenizer files   (loadable by every command)
        optimizer.pt, scheduler.pt, rng.pt                  (read back with weights_only=True)
        trainer_state.json                                  (stage, step, sampler state)

Written into `step-N.tmp/` and renamed, so a killed run never leaves a half checkpoint behind.
Under FSDP (train.parallel: fsdp) the same files are written by rank 0 from full state dicts gathered
from every rank: the weights in the usual safetensors layout, the optimizer state keyed by parameter
names (torch.distributed.checkpoint's full optimizer state dict) rather than by position.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from audioflamingo.errors import ModelLoadError
from audioflamingo.files import check_safetensors, read_json, torch_load


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def latest(output_dir: str | Path) -> Path | None:
    done = sorted(
        p
        for p in checkpoint_dir(output_dir).glob("step-*")
        if not p.name.endswith(".tmp") and (p / "trainer_state.json").is_file()
    )
    return done[-1] if done else None


def save_model(model, directory: str | Path, tokenizer=None, state: dict | None = None) -> None:
    """model.save_pretrained, optionally from a full state dict gathered off a sharded model."""
    if state is None:
        model.save_pretrained(directory, tokenizer)
        return
    # save_pretrained reads the tensors through model.state_dict() (safetensors' tied-name handling,
    # base parts left out): shadowing it on the instance writes the gathered tensors the same way.
    model.state_dict = lambda *a, **k: dict(state)
    try:
        model.save_pretrained(directory, tokenizer)
    finally:
        del model.state_dict


def save(
    output_dir,
    step: int,
    model,
    tokenizer,
    optimizer,
    scheduler,
    state: dict,
    keep_last: int,
    model_state: dict | None = None,
    optimizer_state: dict | None = None,
) -> Path:
    """model_state/optimizer_state: full state dicts gathered from a sharded model (FSDP)."""
    root = checkpoint_dir(output_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f"step-{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(model, tmp, tokenizer, model_state)
    torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(
        {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        tmp / "rng.pt",
    )
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.replace(final)
    old = sorted(p for p in root.glob("step-*") if not p.name.endswith(".tmp"))
    # The checkpoint just written always stays, whatever keep_last says: it is what --resume needs.
    for p in old[: max(0, len(old) - max(1, keep_last))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def read_state(path: Path) -> dict:
    """trainer_state.json of a checkpoint, checked enough to resume from (one line naming it if not)."""
    f = path / "trainer_state.json"
    state = read_json(f)
    need = ("stage_index", "stage_step", "global_step", "sampler")
    if not isinstance(state, dict) or any(k not in state for k in need):
        raise ModelLoadError(f"{f}: not a trainer state (needs {', '.join(need)})")
    return state


def load_into(path: Path, model, optimizer, scheduler) -> dict:
    """Restore a checkpoint; every file is read weights-only, and a damaged one is named in one line."""
    load_weights(path, model)
    for name, target in (("optimizer.pt", optimizer), ("scheduler.pt", scheduler)):
        try:
            target.load_state_dict(torch_load(path / name))
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise ModelLoadError(f"{path / name}: does not fit this run ({str(err).strip()[:200]})") from None
    return load_rng(path)


def load_weights(path: Path, model) -> None:
    """The checkpoint's weights into an unsharded model (under FSDP: before it is sharded)."""
    from safetensors.torch import load_model

    from audioflamingo.base_parts import trained_state

    check_safetensors(path / "model.safetensors")
    base_parts = getattr(model.config, "base_parts", None)
    # A checkpoint holds the trained tensors only (base parts come from the cache, as in a model
    # directory): the base parts' keys may be absent, nothing else.
    from_parts = set(model.state_dict()) - set(trained_state(model, base_parts)) if base_parts else set()
    try:
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=not from_parts)
    except Exception as err:  # noqa: BLE001 - shape mismatch or damage past the header
        raise ModelLoadError(
            f"{path / 'model.safetensors'}: cannot be loaded into this run's model "
            f"({str(err).strip().splitlines()[0][:200]})"
        ) from None
    extra = sorted((set(missing) - from_parts) | set(unexpected))
    if extra:
        raise ModelLoadError(
            f"{path / 'model.safetensors'}: cannot be loaded into this run's model "
            f"({len(extra)} tensors do not match, e.g. {extra[0]})"
        )


def load_sharded_state(path: Path, model, optimizer, scheduler) -> dict:
    """Optimizer, scheduler and random state into a sharded run (every rank calls it): rank 0 reads
    the optimizer file and each rank keeps its shards; a file rank 0 cannot use fails every rank."""
    import torch.distributed as dist

    from audioflamingo.train import sharding

    f = path / "optimizer.pt"
    full, problem = {}, None
    if dist.get_rank() == 0:
        try:
            full = torch_load(f)
        except ModelLoadError as err:
            problem = str(err)
    flag = torch.tensor([problem is not None], dtype=torch.float32, device=sharding.collective_device())
    dist.all_reduce(flag)
    if flag.item():
        raise ModelLoadError(problem or f"{f}: could not be read on rank 0 (its message is in rank 0's log)")
    try:
        sharding.load_full_optimizer_state(model, optimizer, full)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ModelLoadError(f"{f}: does not fit this run ({str(err).strip()[:200]})") from None
    try:
        scheduler.load_state_dict(torch_load(path / "scheduler.pt"))
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ModelLoadError(f"{path / 'scheduler.pt'}: does not fit this run ({str(err).strip()[:200]})") from None
    return load_rng(path)


def load_rng(path: Path) -> dict:
    """Random state of the checkpoint restored; returns its trainer state."""
    rng = torch_load(path / "rng.pt")
    try:
        torch.set_rng_state(rng["torch"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise ModelLoadError(f"{path / 'rng.pt'}: not a random-state file ({str(err).strip()[:200]})") from None
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return read_state(path)
