"""Issue 21 on CPU: batch-1 decode against the memory-bandwidth floor, decode threads with and
without a competing process, the bf16 path and its logit drift, batch 16 vs batch 1, and prefill.

Same model as bench/decode.py (Qwen2-0.5B-shaped LM, xattn before every block, 12 windows x 64
dense audio tokens, random weights) on the lean runtime. On a shared machine the load moves while
a benchmark runs, so each figure is measured in `--rounds` rounds, interleaved with the bandwidth
it is compared to, and every row records the load average at that moment.

    python bench/cpu_decode.py --out bench/results/cpu-decode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch
from decode import build_mid, busy_loops, bytes_per_token, gemv_bandwidth, load_average, timed_generate

from audioflamingo.tasks import left_pad

PROMPT = "<s>The task is audio captioning.<audio>Describe the sound in a sentence.<SEP>"


def step_seconds(model, ids, mask, clips, new_tokens: int, threads: str) -> float:
    """Median decode-step interval with the decode loop on `threads` (AUDIOFLAMINGO_DECODE_THREADS;
    "" = the runtime's own policy)."""
    os.environ["AUDIOFLAMINGO_DECODE_THREADS"] = threads
    try:
        return statistics.median(timed_generate(model, ids, mask, clips, new_tokens, True)[1])
    finally:
        os.environ.pop("AUDIOFLAMINGO_DECODE_THREADS", None)


def floor_rounds(model, ids, mask, clips, args) -> list[dict]:
    nbytes = bytes_per_token(model, args.windows * 64)
    rows = []
    for r in range(args.rounds):
        bw = max(gemv_bandwidth(1), gemv_bandwidth(2))
        row = {"round": r, "gemv_read_bytes_per_s": bw, "bytes_per_token": nbytes, "floor_s": nbytes / bw}
        for threads in ("1", "2"):
            s = step_seconds(model, ids, mask, clips, args.new_tokens, threads)
            row[f"s_per_step_{threads}t"] = s
            row[f"ratio_{threads}t"] = s / row["floor_s"]
        row["load_average"] = load_average()
        rows.append(row)
        print(
            f"[floor] round {r}: read {bw / 1e9:.1f} GB/s -> floor {row['floor_s'] * 1e3:.1f} ms; "
            f"1 thread {row['s_per_step_1t'] * 1e3:.1f} ms ({row['ratio_1t']:.2f}x), "
            f"2 threads {row['s_per_step_2t'] * 1e3:.1f} ms ({row['ratio_2t']:.2f}x)  load {row['load_average']}",
            flush=True,
        )
    return rows


def load_rounds(model, ids, mask, clips, args) -> list[dict]:
    rows = []
    for busy in (0, 1):
        for threads in ("1", "2", ""):
            with busy_loops(busy):
                s = step_seconds(model, ids, mask, clips, args.new_tokens, threads)
            rows.append(
                {"busy_processes": busy, "threads": threads or "policy", "s_per_step": s, "load": load_average()}
            )
            print(
                f"[load] busy {busy}, decode threads {threads or 'policy'}: {s * 1e3:.1f} ms/step  "
                f"load {load_average()}",
                flush=True,
            )
    return rows


@torch.no_grad()
def drift(model32, model16, ids, mask, clips, new_tokens: int) -> dict:
    """Next-token logits of the bf16 model against fp32 along the fp32 greedy path, and whether
    greedy decoding picks the same tokens."""
    seq32 = model32.generate(ids, mask, model32.audio_state(clips), max_new_tokens=new_tokens, eos_token_id=[])
    seq16 = model16.generate(ids, mask, model16.audio_state(clips), max_new_tokens=new_tokens, eos_token_id=[])
    m = torch.ones_like(seq32)
    a = model32(seq32, m, audio=model32.audio_state(clips)).logits[0, ids.shape[1] - 1 :].float()
    clips16 = [[c.to(torch.bfloat16) for c in row] for row in clips]
    b = model16(seq32, m, audio=model16.audio_state(clips16)).logits[0, ids.shape[1] - 1 :].float()
    return {
        "max_abs_logit_diff": float((a - b).abs().max()),
        "logit_std": float(a.std()),
        "relative_max_diff": float((a - b).abs().max() / a.std()),
        "top1_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean()),
        "greedy_same_prefix": next(
            (i for i, (x, y) in enumerate(zip(seq32[0, ids.shape[1] :], seq16[0, ids.shape[1] :])) if x != y),
            new_tokens,
        ),
        "greedy_tokens": new_tokens,
    }


def prefill_rows(models: dict, tok, args) -> list[dict]:
    """Prefill + first token (transformation, xattn K/V, LM prefill, from the encoder features) and
    the per-token cost after it, with 1 audio and with `--audios` audios, per dtype, interleaved."""
    text_one = PROMPT
    text_many = "<s>The task is audio captioning." + "<audio>Describe the sound in a sentence.<SEP>" * args.audios
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(args.windows, 64, 2048, generator=g) for _ in range(args.audios)]
    rows = []
    for r in range(args.rounds):
        for n_audio, text in ((1, text_one), (args.audios, text_many)):
            for name, m in models.items():
                ids, mask = left_pad([tok(text, add_special_tokens=False)["input_ids"]], m.special.pad, "cpu")
                clips = [[f.to(m.dtype) for f in feats[:n_audio]]]
                if r == 0:
                    timed_generate(m, ids, mask, clips, 2, True)  # warm-up (and packing)
                first, steps = timed_generate(m, ids, mask, clips, args.new_tokens, True)
                rows.append(
                    {
                        "round": r,
                        "dtype": name,
                        "audios": n_audio,
                        "prompt_tokens": ids.shape[1],
                        "prefill_and_first_token_s": first,
                        "s_per_step": statistics.median(steps),
                        "load": load_average(),
                    }
                )
                print(
                    f"[prefill] {name} {n_audio} audio(s): prefill + first token {first:.3f} s, then "
                    f"{rows[-1]['s_per_step'] * 1e3:.1f} ms/token  load {load_average()}",
                    flush=True,
                )
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=12)
    ap.add_argument("--new-tokens", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--audios", type=int, default=8)
    ap.add_argument("--parts", default="floor,load,batch,bf16,prefill")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    model, tok = build_mid(torch.float32, "lite")
    prompt = tok(PROMPT, add_special_tokens=False)["input_ids"]
    g = torch.Generator().manual_seed(0)
    clips = [[torch.randn(args.windows, 64, 2048, generator=g)]]
    ids, mask = left_pad([prompt], model.special.pad, "cpu")
    res: dict = {
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads_available": torch.get_num_threads(),
        "load_average_start": load_average(),
    }
    timed_generate(model, ids, mask, clips, 2, True)  # warm-up
    if "floor" in parts:
        res["floor"] = floor_rounds(model, ids, mask, clips, args)
    if "load" in parts:
        res["load"] = load_rounds(model, ids, mask, clips, args)
    if "batch" in parts:
        rows = []
        for _ in range(args.rounds):
            ids16, mask16 = left_pad([prompt] * 16, model.special.pad, "cpu")
            s1 = step_seconds(model, ids, mask, clips, args.new_tokens, "1")
            s1_2t = step_seconds(model, ids, mask, clips, args.new_tokens, "2")
            s16_1t = step_seconds(model, ids16, mask16, clips * 16, args.new_tokens, "1")
            s16 = step_seconds(model, ids16, mask16, clips * 16, args.new_tokens, "2")
            rows.append(
                {
                    "s_per_step_b1_1t": s1,
                    "s_per_step_b1_2t": s1_2t,
                    "s_per_step_b16_1t": s16_1t,
                    "s_per_step_b16_2t": s16,
                    "throughput_ratio_b16_2t_vs_b1_1t": 16 * s1 / s16,
                    "throughput_ratio_b16_2t_vs_b1_2t": 16 * s1_2t / s16,
                    "load": load_average(),
                }
            )
            print(
                f"[batch] b1 {s1 * 1e3:.1f} ms (1 thread), {s1_2t * 1e3:.1f} ms (2 threads); b16 "
                f"{s16_1t * 1e3:.1f} ms (1 thread), {s16 * 1e3:.1f} ms (2 threads): b16 at 2 threads gives "
                f"{16 * s1 / s16:.2f}x / {16 * s1_2t / s16:.2f}x the b1 throughput  load {load_average()}",
                flush=True,
            )
        res["batch"] = rows
    if "bf16" in parts:
        # A second build, not a deepcopy: the copy's LM hooks would still call the fp32 xattn layers.
        m16 = build_mid(torch.bfloat16, "lite")[0]
        clips16 = [[c.to(torch.bfloat16) for c in row] for row in clips]
        timed_generate(m16, ids, mask, clips16, 2, True)
        rows = []
        for _ in range(args.rounds):
            bw = max(gemv_bandwidth(1), gemv_bandwidth(2))
            s32 = step_seconds(model, ids, mask, clips, args.new_tokens, "")
            s16 = step_seconds(m16, ids, mask, clips16, args.new_tokens, "")
            f32, f16 = bytes_per_token(model, args.windows * 64) / bw, bytes_per_token(m16, args.windows * 64) / bw
            rows.append(
                {
                    "s_per_step_fp32": s32,
                    "s_per_step_bf16": s16,
                    "floor_fp32_s": f32,
                    "floor_bf16_s": f16,
                    "ratio_fp32": s32 / f32,
                    "ratio_bf16": s16 / f16,
                    "load": load_average(),
                }
            )
            print(
                f"[bf16] fp32 {s32 * 1e3:.1f} ms ({s32 / f32:.2f}x its floor), bf16 {s16 * 1e3:.1f} ms "
                f"({s16 / f16:.2f}x its floor {f16 * 1e3:.1f} ms)  load {load_average()}",
                flush=True,
            )
        res["bf16"] = rows
        res["bf16_drift"] = drift(model, m16, ids, mask, clips, 16)
        print(f"[bf16] drift: {res['bf16_drift']}", flush=True)
    if "prefill" in parts:
        models = {"float32": model}
        if "bf16" in parts:
            models["bfloat16"] = m16
        res["prefill"] = prefill_rows(models, tok, args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
