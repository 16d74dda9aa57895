"""The v2 model's starting point: Whisper tiny.en's encoder and SmolLM2-135M-Instruct, both frozen
base parts, joined by freshly initialised transformation and gated xattn-dense layers (issue 18).

`python -m audioflamingo.base_parts.v2 init --out DIR` writes that model directory (the trained tensors
only: transformation and xattn-dense; the base parts are named with their digests); a training
recipe starts from it (`model: {init: DIR}`, recipes/default-v2.yaml). With every gate at 0 the
model computes exactly what SmolLM2 computes.

Special tokens: SmolLM2's tokenizer has 17 special tokens; its chat template uses `<|im_start|>`
and `<|im_end|>`, and `<|endoftext|>` is its unk token. Of the other 14, 11 rows of the embedding
table are (to the Q4 quantisation step) one shared vector: never trained, so the LM could not tell
those tokens apart, as inputs or as outputs. The three with rows of their own are `<repo_name>`,
`<reponame>` and `<filename>`. `<EOC>` has to be generated, so it takes the one the frozen LM
finds likeliest after a finished sentence (`<repo_name>`: rank about 5,000 of 49,152 where
`<filename>` is about 36,000), `<audio>` and `<SEP>` the other two in id order. Measured on the
converted part (base part digest e4b29829...); text/reserved_tokens.py does the renaming.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from audioflamingo.text.tokenizer import AUDIO, EOC, SEP

ENCODER_PART = "whisper-tiny.en-encoder"
LM_PART = "smollm2-135m-instruct"
# old special token of the base LM's tokenizer -> the template token it becomes (ids 3, 4, 6)
SMOLLM2_RESERVED = {"<repo_name>": EOC, "<reponame>": AUDIO, "<filename>": SEP}


@dataclass
class V2Spec:
    """The trained parts' shapes. 1-s windows (what the encoder probes measured), Whisper's 50
    tokens per window pooled to 10 (100 ms each); xattn-dense before every 3rd of SmolLM2's 30 layers
    (10 layers) to keep a CPU step affordable; the transformation at Whisper's width (no projection)."""

    encoder_part: str = ENCODER_PART
    lm_part: str = LM_PART
    reserved: dict[str, str] = field(default_factory=lambda: dict(SMOLLM2_RESERVED))
    window_seconds: float = 1.0
    max_windows: int = 10
    tokens_per_window: int = 10
    transformation_layers: int = 2
    transformation_heads: int = 6
    transformation_ffn: int = 1024
    xattn_every: int = 3
    xattn_heads: int = 4
    xattn_dim_head: int = 64
    xattn_ff_mult: int = 1


def build_v2(spec: V2Spec | None = None, seed: int = 0):
    """(model, tokenizer): the base parts loaded (converted at first use), the LM and encoder frozen,
    the new layers initialised from `seed`, config.base_parts naming both parts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from audioflamingo.audio.whisper import whisper_encoder_config
    from audioflamingo.base_parts import ensure_part, load_part_state, part_digest
    from audioflamingo.config import AudioFlamingoConfig, TransformationConfig, WindowConfig, XAttnConfig
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.text.reserved_tokens import rename_special_tokens
    from audioflamingo.text.tokenizer import add_special_tokens

    spec = spec or V2Spec()
    lm_dir = ensure_part(spec.lm_part)
    with tempfile.TemporaryDirectory(prefix="af-v2-tok.") as tmp:
        rename_special_tokens(lm_dir, tmp, spec.reserved)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    vocab_before = len(tokenizer)
    special = add_special_tokens(tokenizer)  # finds all three: nothing is added
    if len(tokenizer) != vocab_before:
        raise RuntimeError(f"{spec.lm_part}: the tokenizer grew; the reserved tokens were not renamed")
    lm = AutoModelForCausalLM.from_pretrained(str(lm_dir), dtype=torch.float32).eval()
    if lm.get_input_embeddings().num_embeddings < len(tokenizer):
        raise RuntimeError(f"{spec.lm_part}: the tokenizer has more ids than the LM has embedding rows")
    enc_cfg = whisper_encoder_config(spec.encoder_part, spec.tokens_per_window, frozen=True)
    cfg = AudioFlamingoConfig(
        window=WindowConfig(
            sample_rate=16000,
            window_seconds=spec.window_seconds,
            hop_seconds=spec.window_seconds,
            max_windows=spec.max_windows,
            max_duration_seconds=600.0,
        ),
        encoder=enc_cfg,
        transformation=TransformationConfig(
            dim=enc_cfg.dim,
            num_layers=spec.transformation_layers,
            num_heads=spec.transformation_heads,
            ffn_dim=spec.transformation_ffn,
            positions="rotary",
            rotary_dim=16,
            rotary_base=4096.0,
        ),
        xattn=XAttnConfig(
            every_n_layers=spec.xattn_every,
            heads=spec.xattn_heads,
            dim_head=spec.xattn_dim_head,
            ff_mult=spec.xattn_ff_mult,
        ),
        preset="v2",
    )
    torch.manual_seed(seed)
    model = AudioFlamingo(cfg, lm, special)
    model.encoder.load_state_dict(model.encoder.adapt_base_state(load_part_state(spec.encoder_part)), strict=True)
    cfg.base_parts = {
        "encoder": {"name": spec.encoder_part, "sha256": part_digest(spec.encoder_part)},
        "lm": {"name": spec.lm_part, "sha256": part_digest(spec.lm_part)},
    }
    model.eval()
    model.requires_grad_(False)  # training stages choose what trains (train/stages.py)
    return model, tokenizer


def encoder_embedder(model_dir: str | Path):
    """A kNN clip embedder (retrieval/embed.py) on the base-part encoder a v2 directory names."""
    from audioflamingo.errors import ModelLoadError
    from audioflamingo.model.checks import load_config
    from audioflamingo.retrieval.embed import ClipEmbedder

    cfg_file = Path(model_dir) / "config.json"
    if load_config(cfg_file).base_parts.get("encoder") is None:
        raise ModelLoadError(f"{cfg_file}: names no base-part encoder (use `audioflamingo data build-icl`)")
    return ClipEmbedder.from_directory(model_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m audioflamingo.base_parts.v2",
        description="The v2 model's preparation steps (recipes/default-v2.yaml, make default-model-v2).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser(
        "init",
        help="write the untrained v2 model directory (Whisper tiny.en + SmolLM2-135M-Instruct base parts, "
        "new transformation and xattn-dense layers)",
    )
    q.add_argument("--out", required=True, help="model directory to write")
    q.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("build-icl", help="kNN ICL neighbours of a manifest on a v2 directory's base-part encoder")
    q.add_argument("manifest")
    q.add_argument("--model", required=True, help="a v2 model directory (its encoder base part is used)")
    q.add_argument("--k", type=int, default=8)
    q.add_argument("--out", required=True, help="neighbour file to write (kept apart from other encoders' files)")
    a = p.parse_args(argv)
    if a.command == "build-icl":
        import json

        from audioflamingo.data.icl import build_icl

        print(json.dumps(build_icl(a.manifest, encoder_embedder(a.model), k=a.k, out=a.out, progress=True)))
        return 0
    model, tok = build_v2(seed=a.seed)
    model.save_pretrained(a.out, tok)
    trained = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("lm.", "encoder.")))
    parts = ", ".join(s["name"] for s in model.config.base_parts.values())
    print(f"wrote {a.out}: {trained:,} new parameters to train; base parts (not in the directory): {parts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
