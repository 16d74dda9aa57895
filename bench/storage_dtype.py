"""Smallest storage dtype that keeps a model's outputs: the trained tensors of a model directory
written as bf16 / fp16 (loaded back into the model's fp32), greedy captions and answers compared
with the fp32 file's on the first N clips of a manifest, and the file sizes.

    python bench/storage_dtype.py runs/default-v2/final --manifest data/synth/heldout/eval/caption.jsonl -n 40

With --ship DIR (what `make ship-default-model` runs) the copy in --dtype is written to DIR, replacing it,
only if its outputs equal the fp32 file's on every clip; otherwise nothing is written and it exits 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch


def cast_copy(src: Path, dst: Path, dtype: torch.dtype) -> int:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    state = load_file(str(src / "model.safetensors"))
    save_file(
        {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, str(dst / "model.safetensors")
    )
    return (dst / "model.safetensors").stat().st_size


def outputs(model_dir: Path, clips: list[str]) -> list[str]:
    from audioflamingo import AudioFlamingoPipeline

    af = AudioFlamingoPipeline.load(str(model_dir))
    return af.caption(clips) + af.ask(clips, "What is the first sound?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--out", help="write the measurements here (JSON)")
    ap.add_argument("--ship", metavar="DIR", help="write the --dtype copy here if it keeps every output")
    ap.add_argument("--dtype", choices=["bfloat16", "float16"], default="bfloat16")
    args = ap.parse_args()
    man = Path(args.manifest)
    rows = [json.loads(line) for line in man.read_text().splitlines() if line.strip()][: args.n]
    clips = [str((man.parent / r["audio"]).resolve()) for r in rows]
    src = Path(args.model)
    ref = outputs(src, clips)
    res = {"model": args.model, "items": len(ref), "fp32_bytes": (src / "model.safetensors").stat().st_size}
    with tempfile.TemporaryDirectory() as tmp:
        for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
            size = cast_copy(src, Path(tmp) / name, dtype)
            got = outputs(Path(tmp) / name, clips)
            res[name] = {"bytes": size, "same_outputs": sum(a == b for a, b in zip(ref, got))}
            if args.ship and name == args.dtype and res[name]["same_outputs"] == len(ref):
                dst = Path(args.ship)
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(Path(tmp) / name, dst)
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    if args.ship and res[args.dtype]["same_outputs"] != len(ref):
        raise SystemExit(
            f"{args.model}: as {args.dtype} {len(ref) - res[args.dtype]['same_outputs']} of {len(ref)} outputs "
            f"change; {args.ship} not written"
        )


if __name__ == "__main__":
    main()
