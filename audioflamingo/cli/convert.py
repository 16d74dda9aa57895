"""`audioflamingo convert af1|af2`: import NVIDIA's released Audio Flamingo checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

EPILOG = """examples:
  audioflamingo convert af1 --checkpoint foundation.pt --lm opt-iml-max-1.3b/ \\
      --clap clapcap_weights_2023.pth --out af1-foundation/
  audioflamingo convert af2 --checkpoint audio-flamingo-2/safe_ckpt/ --lm Qwen2.5-3B/ --out af2-3b/

--lm is the local Hugging Face folder of the language model the checkpoint was trained from (its
config and tokenizer are used; its weights are not read). Files and licences: docs/OFFICIAL_CHECKPOINTS.md"""


def add_convert_command(sub) -> None:
    import argparse

    p = sub.add_parser(
        "convert",
        help="import an official AF1/AF2 checkpoint into a model directory",
        description="Map every tensor of an official checkpoint onto this project's model, checking "
        "duplicated groups, shapes and constants; write a from_pretrained directory "
        "(safetensors + config + tokenizer with the official special tokens).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=("af1", "af2"), help="af1: foundation.pt / chat.pt; af2: safe_ckpt/ (0.5B/1.5B/3B)")
    p.add_argument("--checkpoint", required=True, help="AF1 .pt file, or AF2 safe_ckpt/ folder")
    p.add_argument("--lm", required=True, metavar="DIR", help="local folder of the base LM (config + tokenizer)")
    p.add_argument(
        "--clap",
        metavar="FILE",
        help="AF1: clapcap_weights_2023.pth (required); AF2: clap_ckpt/epoch_16.pt "
        "if the checkpoint holds no clap.* tensors",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write (must not exist)")
    p.add_argument("--audio-heads", type=int, default=8, help="heads of the transformation layers (8 officially)")


def run_convert_command(args) -> int:
    from audioflamingo.atomic import new_directory
    from audioflamingo.convert.convert import convert

    out = Path(args.out)
    with new_directory(out) as tmp:  # a failed conversion leaves nothing behind
        report = convert(args.kind, args.checkpoint, args.lm, tmp, clap=args.clap, audio_heads=args.audio_heads)
    report["out"] = str(out)
    print(json.dumps(report, indent=1))
    return 0
