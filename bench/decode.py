"""Decode speed of the core model: audio K/V cached vs recomputed, batch 1 vs 16, bandwidth floor,
and how the audio path's cost grows with the number of windows.

Mid-size random-initialised config: a Qwen2-0.5B-shaped LM (24 layers, d 896, vocab 151936) with
xattn-dense before every block, AF2 dense audio (12 windows x 64 tokens x 2048, 3 transformation
layers). The audio encoder is not timed (its cost per window is constant); features are random.

    python bench/decode.py --out bench/results/decode.json     # writes JSON, prints markdown
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from audioflamingo.config import EncoderConfig
from audioflamingo.model.flamingo import AudioFlamingo
from audioflamingo.presets import preset_config
from audioflamingo.tasks import left_pad
from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer

QWEN2_05B = dict(
    model_type="qwen2",
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=32768,
    tie_word_embeddings=True,
    rope_theta=1000000.0,
)


def build_mid(dtype):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg, _ = preset_config("af2")
    cfg.encoder = EncoderConfig(kind="mel_conv", output="dense", dim=2048, tokens_per_window=64, hidden=32)
    tok = byte_level_tokenizer()
    special = add_special_tokens(tok)
    kw = dict(QWEN2_05B)
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(kw.pop("model_type"), **kw))
    model = AudioFlamingo(cfg, lm, special).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("_gate"):
                p.fill_(0.5)
    return model.to(dtype), tok


class StepClock:
    """Logits processor used as a stopwatch: called once per generated token."""

    def __init__(self):
        self.t: list[float] = []

    def __call__(self, input_ids, scores):
        self.t.append(time.perf_counter())
        return scores


def decode_seconds_per_step(model, ids, mask, clips, new_tokens, cache_kv):
    from transformers import LogitsProcessorList

    clock = StepClock()
    state = model.audio_state(clips, cache_kv=cache_kv)
    model.generate(
        ids,
        mask,
        state,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        logits_processor=LogitsProcessorList([clock]),
    )
    steps = [b - a for a, b in zip(clock.t, clock.t[1:])]  # excludes the prefill
    return statistics.median(steps)


def copy_bandwidth(gib=1.0):
    n = int(gib * 2**30 / 4)
    src, dst = torch.ones(n), torch.empty(n)
    dst.copy_(src)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * n * 4 / best  # bytes read + written per second


def bytes_per_token(model, n_audio_tokens, batch=1):
    """Weights a batch-1 decode step must read: LM (embedding table once, as the tied lm_head), the
    xattn layers' query/output/FF weights, and the cached audio K/V."""
    b = 0
    for p in model.lm.parameters():
        b += p.numel() * p.element_size()
    for blk in model.fusion.xattn.values():
        for name, p in blk.named_parameters():
            if "to_kv" not in name:
                b += p.numel() * p.element_size()
        a = blk.attn
        b += 2 * batch * n_audio_tokens * a.heads * a.dim_head * 4
    return b


def linear_fit(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    ss_res = sum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, 1 - ss_res / ss_tot


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=12)
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--scaling-windows", default="1,4,8,12,20,30")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--skip-decode", action="store_true", help="only the audio-path scaling part")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    model, tok = build_mid(dtype)
    model.to(args.device)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    prompt = tok(
        "<s>The task is audio captioning.<audio>Describe the sound in a sentence.<SEP>", add_special_tokens=False
    )["input_ids"]
    g = torch.Generator().manual_seed(0)

    def clips_for(batch, windows):
        return [[torch.randn(windows, 64, 2048, generator=g).to(dev, dtype)] for _ in range(batch)]

    res = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "dtype": args.dtype,
        "windows": args.windows,
        "new_tokens": args.new_tokens,
        "params_total": sum(p.numel() for p in model.parameters()),
        "decode": [],
    }
    if dev.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(0)
    with torch.no_grad():
        for batch in [] if args.skip_decode else [int(b) for b in args.batches.split(",")]:
            ids, mask = left_pad([prompt] * batch, model.special.pad, dev)
            clips = clips_for(batch, args.windows)
            decode_seconds_per_step(model, ids, mask, clips, 2, True)  # warm-up
            for cache_kv in (True, False):
                s = decode_seconds_per_step(model, ids, mask, clips, args.new_tokens, cache_kv)
                res["decode"].append(
                    {"batch": batch, "audio_kv_cached": cache_kv, "s_per_step": s, "tokens_per_s": batch / s}
                )
                print(
                    f"batch {batch:2d} cached={cache_kv!s:5}: {s * 1e3:8.1f} ms/step  {batch / s:8.2f} tok/s",
                    flush=True,
                )
        bw = copy_bandwidth() if dev.type == "cpu" and not args.skip_decode else None
        if bw:
            floor = bytes_per_token(model, args.windows * 64) / bw
            b1 = next(r for r in res["decode"] if r["batch"] == 1 and r["audio_kv_cached"])
            res["bandwidth"] = {
                "copy_bytes_per_s": bw,
                "bytes_per_token": bytes_per_token(model, args.windows * 64),
                "floor_s_per_token": floor,
                "measured_s_per_token": b1["s_per_step"],
                "ratio": b1["s_per_step"] / floor,
            }
            print(
                f"bandwidth floor {floor * 1e3:.1f} ms/token, measured {b1['s_per_step'] * 1e3:.1f} "
                f"(ratio {b1['s_per_step'] / floor:.2f})"
            )
        res["scaling"] = []
        ids, mask = left_pad([prompt], model.special.pad, dev)
        for w in [int(x) for x in args.scaling_windows.split(",")]:
            clips = clips_for(1, w)
            t_tr, t_kv = [], []
            for _ in range(5):
                sync()
                t0 = time.perf_counter()
                state = model.audio_state(clips, cache_kv=True)
                sync()
                t1 = time.perf_counter()
                for i, blk in model.fusion.xattn.items():
                    state.kv[int(i)] = blk.attn.keys_values(state.audio)
                sync()
                t_tr.append(t1 - t0)
                t_kv.append(time.perf_counter() - t1)
            step = decode_seconds_per_step(model, ids, mask, clips, 4, True)
            res["scaling"].append(
                {
                    "windows": w,
                    "audio_tokens": w * 64,
                    "transformation_s": min(t_tr),
                    "xattn_kv_s": min(t_kv),
                    "transform_and_kv_s": min(t_tr) + min(t_kv),
                    "decode_s_per_step": step,
                }
            )
            print(
                f"{w:2d} windows: transformation {min(t_tr) * 1e3:7.1f} ms, xattn K/V {min(t_kv) * 1e3:7.1f} ms, "
                f"decode {step * 1e3:6.1f} ms/step",
                flush=True,
            )
        if args.skip_decode:
            res.pop("decode")
    xs = [r["audio_tokens"] for r in res["scaling"]]
    res["scaling_linear_fit"] = {}
    for key in ("transformation_s", "xattn_kv_s", "transform_and_kv_s"):
        slope, r2 = linear_fit(xs, [r[key] for r in res["scaling"]])
        res["scaling_linear_fit"][key] = {"s_per_audio_token": slope, "r2": r2}
        print(f"linear fit of {key}: {slope * 1e6:.1f} us per audio token, R^2 = {r2:.4f}")
    if args.out:
        import pathlib

        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
