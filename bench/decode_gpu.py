"""Decode speed on a GPU at AF2-3B size: dynamic cache vs static cache vs static cache + CUDA graphs,
against the HBM floor (bytes a step must read / the card's measured copy bandwidth).

Model: random weights in the AF2 layout at full size: a Qwen2.5-3B-shaped LM (36 blocks, d 2048,
vocab 151936) with xattn-dense before every block, 3 transformation layers, 12 windows x 64 dense
audio tokens of 2048 features (random; the audio encoder is not timed, as in bench/decode.py).
`--size mid` is bench/decode.py's Qwen2-0.5B shape (for a quick check on a CPU).

    python bench/decode_gpu.py --device cuda --dtype bfloat16 --out bench/results/decode-gpu.json
    python bench/decode_gpu.py --size mid --device cpu --modes lite,static --batches 1 --tokens 6  # smoke

Rows: runtime (lite: the lean LM, dynamic cache; static: preallocated cache, eager; graph: static
cache, one CUDA graph replay per step; compiled: that graph over torch.compile's fused kernels; hf: the transformers model, dynamic cache), batch, audios per
row; ms per token is the median step interval (prefill excluded), prefill_s is prompt + audio
transformation + first token.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from audioflamingo.config import EncoderConfig
from audioflamingo.model.flamingo import AudioFlamingo
from audioflamingo.model.lite import LiteCausalLM
from audioflamingo.presets import preset_config
from audioflamingo.tasks import left_pad
from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from bench.decode import QWEN2_05B  # noqa: E402

MID = {**QWEN2_05B, "rms_norm_eps": 1e-6}  # bench/decode.py's LM


def build(size: str, device: torch.device, dtype: torch.dtype):
    cfg, lm_cfg = preset_config("af2")
    if size == "mid":
        lm_cfg = dict(MID)
    cfg.encoder = EncoderConfig(kind="mel_conv", output="dense", dim=2048, tokens_per_window=64, hidden=32)
    tok = byte_level_tokenizer()
    special = add_special_tokens(tok)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: 3 B parameters take minutes on a CPU
        lm = LiteCausalLM(lm_cfg)
        model = AudioFlamingo(cfg, lm, special).eval()
        for n, p in model.named_parameters():
            p.requires_grad_(False)
            if n.endswith("_gate"):
                p.fill_(0.5)
            elif p.dim() >= 2:
                p.normal_(0, 0.02)  # kaiming-uniform logits of a 151936-way head overflow bf16 less often
    return model.to(dtype), tok


class Clock:
    """Logits processor: stopwatch per generated token, and EOS/EOC banned so every run is full length."""

    def __init__(self, banned: list[int]):
        self.t: list[float] = []
        self.banned = banned

    def __call__(self, input_ids, scores):
        self.t.append(time.perf_counter())
        scores[:, self.banned] = -float("inf")
        return scores


def run_once(model, ids, mask, clips, tokens, mode, sync):
    banned = [model.special.eoc] + ([model.special.eos] if model.special.eos is not None else [])
    clock = Clock(banned)
    kw = dict(max_new_tokens=tokens, logits_processor=[clock])
    if mode in ("static", "graph", "compiled"):
        kw.update(cache_implementation="static", cuda_graph=mode != "static", compile_step=mode == "compiled")
    sync()
    t0 = time.perf_counter()
    state = model.audio_state(clips, cache_kv=True)
    model.generate(ids, mask, state, **kw)
    sync()
    steps = [b - a for a, b in zip(clock.t, clock.t[1:])]
    return {"prefill_s": clock.t[0] - t0, "s_per_token": statistics.median(steps), "steps": len(steps)}


def step_bytes(model, batch: int, audio_tokens: int, ctx: int) -> int:
    """Bytes a decode step must read at least: every LM weight once (the tied table as the head), the
    xattn query/output/FF weights, the cached audio K/V and the self-attention cache."""
    n = sum(p.numel() * p.element_size() for p in model.lm.parameters())
    for blk in model.fusion.xattn.values():
        n += sum(p.numel() * p.element_size() for name, p in blk.named_parameters() if "to_kv" not in name)
        a = blk.attn
        n += 2 * batch * audio_tokens * a.heads * a.dim_head * blk.attn.to_q.weight.element_size()
    c = model.lm.config.to_dict()
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    el = model.lm.lm_head.weight.element_size()
    n += 2 * batch * ctx * c["num_key_value_heads"] * hd * c["num_hidden_layers"] * el
    return n


def copy_bandwidth(device: torch.device, gib: float = 2.0) -> float:
    """Bytes read + written per second by a device-to-device copy (the best of 10)."""
    n = int(gib * 2**30 / 4)
    src, dst = torch.ones(n, device=device), torch.empty(n, device=device)
    best = float("inf")
    for _ in range(11):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        dst.copy_(src)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    del src, dst
    return 2 * n * 4 / best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="af2-3b", choices=["af2-3b", "mid"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--modes", default="hf,lite,static,graph", help="runtimes to time (comma-separated)")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--audios", default="1,8", help="audios per row (each --windows long)")
    ap.add_argument("--windows", type=int, default=12)
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per run")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per row (the best is kept)")
    ap.add_argument("--out")
    args = ap.parse_args()
    dev, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t = time.perf_counter()
    model, tok = build(args.size, dev, dtype)
    res: dict = {
        "size": args.size,
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else f"cpu {platform.processor()}",
        "dtype": args.dtype,
        "torch": torch.__version__,
        "params": sum(p.numel() for p in model.parameters()),
        "build_s": time.perf_counter() - t,
        "rows": [],
    }
    bw = copy_bandwidth(dev)
    res["copy_bytes_per_s"] = bw
    print(f"{res['device']}: {res['params'] / 1e9:.2f} B parameters, copy {bw / 1e12:.2f} TB/s", flush=True)
    g = torch.Generator().manual_seed(0)
    for n_audio in [int(a) for a in args.audios.split(",")]:
        text = "<s>The task is audio captioning." + "<audio>" * n_audio + "Describe the sound in a sentence.<SEP>"
        prompt = tok(text, add_special_tokens=False)["input_ids"]
        for batch in [int(b) for b in args.batches.split(",")]:
            if batch > 1 and n_audio > 1:
                continue
            ids, mask = left_pad([prompt] * batch, model.special.pad, dev)
            clips = [
                [torch.randn(args.windows, 64, 2048, generator=g).to(dev, dtype) for _ in range(n_audio)]
                for _ in range(batch)
            ]
            for mode in args.modes.split(","):
                if mode in ("graph", "compiled") and dev.type != "cuda":
                    continue
                if mode == "hf":
                    with torch.device(dev):
                        model.use_hf_lm()
                elif not model.is_lite:
                    lite = LiteCausalLM(model.lm.config.to_dict()).to(dev, dtype)
                    lite.load_state_dict(model.lm.state_dict(), strict=True)
                    model.lm = lite.eval()
                    model.fusion.attach(lite)
                try:
                    run_once(model, ids, mask, clips, 3, mode, sync)  # warm-up (and CUDA graph capture)
                    best = min(
                        (run_once(model, ids, mask, clips, args.tokens, mode, sync) for _ in range(args.repeats)),
                        key=lambda r: r["s_per_token"],
                    )
                except torch.OutOfMemoryError as e:  # keep going: the other rows still mean something
                    best = {"error": f"out of memory: {str(e)[:120]}"}
                ctx = len(prompt) + args.tokens
                floor = step_bytes(model, batch, n_audio * args.windows * 64, ctx) / bw
                row = {"mode": mode, "batch": batch, "audios": n_audio, **best, "floor_s_per_token": floor}
                if "s_per_token" in best:
                    row["x_floor"] = best["s_per_token"] / floor
                    row["tokens_per_s"] = batch / best["s_per_token"]
                    print(
                        f"{mode:6s} batch {batch:2d} audios {n_audio}: {best['s_per_token'] * 1e3:7.2f} ms/token "
                        f"(floor {floor * 1e3:.2f}, x{row['x_floor']:.2f}), prefill {best['prefill_s'] * 1e3:.0f} ms",
                        flush=True,
                    )
                else:
                    print(f"{mode:6s} batch {batch:2d} audios {n_audio}: {best['error']}", flush=True)
                res["rows"].append(row)
    if dev.type == "cuda":
        res["max_memory_allocated"] = torch.cuda.max_memory_allocated()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
