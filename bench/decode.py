"""Decode speed of the core model: audio K/V cached vs recomputed, batch 1 vs 16, bandwidth floor,
and how the audio path's cost grows with the number of windows.

Mid-size random-initialised config: a Qwen2-0.5B-shaped LM (24 layers, d 896, vocab 151936) with
xattn-dense before every block, AF2 dense audio (12 windows x 64 tokens x 2048, 3 transformation
layers). The audio encoder is not timed (its cost per window is constant); features are random.

    python bench/decode.py --out bench/results/decode.json     # writes JSON, prints markdown

CPU options (issue 21): `--runtime lite` decodes on the lean runtime (packed layouts, preallocated
cache, its decode thread policy) instead of transformers; `--dtype auto` takes the CPU's measured
choice (model/cpu_dtype.py); `--busy N` keeps N competing busy-loop processes running during the
decode measurements; `--prefill` times prefill + first token at `--windows` and with `--audios` audios
(and the per-token cost with them); `--profile` prints a torch.profiler table of the decode steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
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


def build_mid(dtype, runtime: str = "hf"):
    """The benchmark model; runtime "lite" swaps its LM for the lean runtime holding the same tensors."""
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
    if runtime == "lite":
        from audioflamingo.model.lite import LiteCausalLM

        lite = LiteCausalLM(lm.config.to_dict()).eval().requires_grad_(False)
        lite.load_state_dict(lm.state_dict(), strict=True)
        model.lm = lite
        model.fusion.attach(lite)
    return model.to(dtype), tok


class StepClock:
    """Logits processor used as a stopwatch: called once per generated token."""

    def __init__(self):
        self.t: list[float] = []

    def __call__(self, input_ids, scores):
        self.t.append(time.perf_counter())
        return scores


def timed_generate(model, ids, mask, clips, new_tokens, cache_kv):
    """(seconds from the raw clips to the first token: transformation, xattn K/V, LM prefill;
    intervals between the following steps)."""
    clock = StepClock()
    t0 = time.perf_counter()
    state = model.audio_state(clips, cache_kv=cache_kv)
    kw: dict = dict(max_new_tokens=new_tokens, do_sample=False)
    if model.is_lite:  # no stop token, so every step runs (the lean runtime has no min_new_tokens)
        kw.update(eos_token_id=[], logits_processor=[clock])
    else:
        from transformers import LogitsProcessorList

        kw.update(min_new_tokens=new_tokens, logits_processor=LogitsProcessorList([clock]))
    model.generate(ids, mask, state, **kw)
    return clock.t[0] - t0, [b - a for a, b in zip(clock.t, clock.t[1:])]


def decode_seconds_per_step(model, ids, mask, clips, new_tokens, cache_kv):
    steps = timed_generate(model, ids, mask, clips, new_tokens, cache_kv)[1]  # excludes the prefill
    return statistics.median(steps)


@contextlib.contextmanager
def busy_loops(n: int):
    """n competing processes spinning on the CPU (another tenant of a shared machine)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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


def gemv_bandwidth(threads: int, mib: int = 1024) -> float:
    """Bytes per second a fp32 GEMV streams from a weight matrix far larger than the caches: the
    rate a batch-1 decode step's weight reads can reach at best."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    w = torch.randn(mib * 2**20 // (4 * 8192), 8192)
    x = torch.randn(8192)
    torch.mv(w, x)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        torch.mv(w, x)
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(old)
    return w.numel() * 4 / best


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
        b += 2 * batch * n_audio_tokens * a.heads * a.dim_head * a.to_q.weight.element_size()
    return b


def linear_fit(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    ss_res = sum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, 1 - ss_res / ss_tot


def prefill_runs(model, tok, prompt, clips_for, args, dev) -> list[dict]:
    """Prefill + first token (from the raw encoder features: transformation, xattn K/V, LM prefill)
    and the per-token cost after it, with one audio and with `--audios` audios of `--windows` each."""
    many = tok(
        "<s>The task is audio captioning." + "<audio>Describe the sound in a sentence.<SEP>" * args.audios,
        add_special_tokens=False,
    )["input_ids"]
    out = []
    for n_audio, ids_list in ((1, prompt), (args.audios, many)):
        ids, mask = left_pad([ids_list], model.special.pad, dev)
        clips = [[c[0] for c in clips_for(n_audio, args.windows)]]
        timed_generate(model, ids, mask, clips, 2, True)  # warm-up
        runs = [timed_generate(model, ids, mask, clips, args.new_tokens, True) for _ in range(2)]
        first = min(r[0] for r in runs)
        step = statistics.median([s for r in runs for s in r[1]])
        out.append(
            {"audios": n_audio, "prompt_tokens": len(ids_list), "prefill_and_first_token_s": first, "s_per_step": step}
        )
        print(
            f"{n_audio} audio(s) x {args.windows} windows: prefill + first token {first:.3f} s, "
            f"then {step * 1e3:.1f} ms/token  (load {load_average()})",
            flush=True,
        )
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=12)
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--scaling-windows", default="1,4,8,12,20,30")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "auto"])
    ap.add_argument("--skip-decode", action="store_true", help="only the audio-path scaling part")
    ap.add_argument("--runtime", default="hf", choices=["hf", "lite"], help="LM runtime (lite: the lean one)")
    ap.add_argument("--decode-threads", default=None, help="AUDIOFLAMINGO_DECODE_THREADS for the lean runtime")
    ap.add_argument("--busy", type=int, default=0, help="competing busy-loop processes during decode")
    ap.add_argument("--skip-uncached", action="store_true", help="skip the recomputed-audio-K/V runs")
    ap.add_argument("--skip-scaling", action="store_true", help="skip the audio-length scaling part")
    ap.add_argument("--prefill", action="store_true", help="prefill + first token, 1 and --audios audios")
    ap.add_argument("--audios", type=int, default=8)
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of batch-1 decode steps")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.decode_threads is not None:
        os.environ["AUDIOFLAMINGO_DECODE_THREADS"] = args.decode_threads
    if args.dtype == "auto":
        from audioflamingo.model.cpu_dtype import decode_dtype

        args.dtype = str(decode_dtype(torch.device(args.device))).removeprefix("torch.")
        print(f"--dtype auto: {args.dtype}", flush=True)
    dtype = getattr(torch, args.dtype)
    model, tok = build_mid(dtype, args.runtime)
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
        "runtime": args.runtime,
        "decode_threads_env": os.environ.get("AUDIOFLAMINGO_DECODE_THREADS"),
        "busy_processes": args.busy,
        "load_average_start": load_average(),
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
            for cache_kv in (True,) if args.skip_uncached else (True, False):
                with busy_loops(args.busy):
                    s = decode_seconds_per_step(model, ids, mask, clips, args.new_tokens, cache_kv)
                res["decode"].append(
                    {
                        "batch": batch,
                        "audio_kv_cached": cache_kv,
                        "s_per_step": s,
                        "tokens_per_s": batch / s,
                        "load_average": load_average(),
                    }
                )
                print(
                    f"batch {batch:2d} cached={cache_kv!s:5}: {s * 1e3:8.1f} ms/step  {batch / s:8.2f} tok/s"
                    f"  (load {load_average()})",
                    flush=True,
                )
        if args.profile:
            from decode_profile import profile_decode  # bench/ is on sys.path as the script's folder

            ids, mask = left_pad([prompt], model.special.pad, dev)
            res["profile"] = profile_decode(model, ids, mask, clips_for(1, args.windows))
        if args.prefill:
            res["prefill"] = prefill_runs(model, tok, prompt, clips_for, args, dev)
        b1s = [r for r in res.get("decode", []) if r["batch"] == 1 and r["audio_kv_cached"]]
        bw = copy_bandwidth() if dev.type == "cpu" and b1s else None
        if bw:
            floor = bytes_per_token(model, args.windows * 64) / bw
            b1 = b1s[0]
            read_bw = max(gemv_bandwidth(1), gemv_bandwidth(2))
            res["bandwidth"] = {
                "copy_bytes_per_s": bw,
                "bytes_per_token": bytes_per_token(model, args.windows * 64),
                "floor_s_per_token": floor,
                "measured_s_per_token": b1["s_per_step"],
                "ratio": b1["s_per_step"] / floor,
                # The issue-21 floor: every byte read at a large fp32 GEMV's streaming rate.
                "gemv_read_bytes_per_s": read_bw,
                "read_floor_s_per_token": bytes_per_token(model, args.windows * 64) / read_bw,
                "read_ratio": b1["s_per_step"] * read_bw / bytes_per_token(model, args.windows * 64),
            }
            print(
                f"bandwidth floor {floor * 1e3:.1f} ms/token, measured {b1['s_per_step'] * 1e3:.1f} "
                f"(ratio {b1['s_per_step'] / floor:.2f}); GEMV read floor "
                f"{res['bandwidth']['read_floor_s_per_token'] * 1e3:.1f} ms at {read_bw / 1e9:.1f} GB/s "
                f"(ratio {res['bandwidth']['read_ratio']:.2f})"
            )
        res["scaling"] = []
        ids, mask = left_pad([prompt], model.special.pad, dev)
        for w in [] if args.skip_scaling else [int(x) for x in args.scaling_windows.split(",")]:
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
    for key in ("transformation_s", "xattn_kv_s", "transform_and_kv_s") if len(xs) > 1 else ():
        slope, r2 = linear_fit(xs, [r[key] for r in res["scaling"]])
        res["scaling_linear_fit"][key] = {"s_per_audio_token": slope, "r2": r2}
        print(f"linear fit of {key}: {slope * 1e6:.1f} us per audio token, R^2 = {r2:.4f}")
    if args.out:
        import pathlib

        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
