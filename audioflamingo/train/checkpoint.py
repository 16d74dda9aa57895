"""Checkpoints: a usable model directory plus everything needed to resume exactly.

    <output_dir>/checkpoints/step-00000040/
        config.json, model.safetensors, tokenizer files   (loadable by every command)
        optimizer.pt, scheduler.pt, rng.pt                  (read back with weights_only=True)
        trainer_state.json                                  (stage, step, sampler state)

Written into `step-N.tmp/` and renamed, so a killed run never leaves a half checkpoint behind.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def latest(output_dir: str | Path) -> Path | None:
    done = sorted(p for p in checkpoint_dir(output_dir).glob("step-*") if not p.name.endswith(".tmp")
                  and (p / "trainer_state.json").is_file())
    return done[-1] if done else None


def save(output_dir, step: int, model, tokenizer, optimizer, scheduler, state: dict, keep_last: int) -> Path:
    root = checkpoint_dir(output_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f"step-{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, tokenizer)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save({"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}, tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.replace(final)
    old = sorted(p for p in root.glob("step-*") if not p.name.endswith(".tmp"))
    for p in old[: max(0, len(old) - keep_last)]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def load_into(path: Path, model, optimizer, scheduler) -> dict:
    from safetensors.torch import load_model

    load_model(model, str(path / "model.safetensors"), strict=True)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng = torch.load(path / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((path / "trainer_state.json").read_text())
