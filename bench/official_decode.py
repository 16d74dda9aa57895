"""Prefill and decode speed of NVIDIA's official AF2 model code and of this project's, measured by one
method in one script (issue 21, goal 2 and the official column of goal 4).

The official code is not part of this project and is never imported from it: pass the directory
holding `flamingo.py`, `flamingo_lm.py`, `helpers.py` and `utils.py` of NVIDIA/audio-flamingo, branch
`audio_flamingo_2` (it needs the `einops` and `einops_exts` packages). Two copies of them exist there:
`inference_HF_pretrained/src`, what NVIDIA ships to run the released AF2 checkpoint, and
`audio_flamingo_2/src`, the training and evaluation code. The latter fails at the first cached decode
step (IndexError): every step re-derives the `<audio>` positions from the one new token, because the
mixin's "media already conditioned" test reads attributes (`audio_x`) that the layers never set (they
store `sound_x`), and its few-shot mask then indexes an empty tensor. That is independent of the
transformers version (4.46.3, its pin, also feeds generate's steps one token at a time); the shipped
inference copy drops that mask and runs. With `audio_flamingo_2/src` this script measures prefill +
first token only and records the error.

    for f in flamingo.py flamingo_lm.py helpers.py utils.py; do
      git --git-dir=MIRROR show audio_flamingo_2:inference_HF_pretrained/src/$f > .official/af2_hf_src/$f; done
    python bench/official_decode.py --official-src .official/af2_hf_src --size mid --out official.json
    python bench/official_decode.py --ours --size mid --out ours.json          # this project, same method

The official model is built the way its `factory.py` builds it, without importing that file (it needs
laion_clap, torchaudio and torchvision, and loads a CLAP checkpoint): a transformers Qwen2 LM from
config with random weights, extended with its `FlamingoLMMixin` (decoder layers at `model.layers`), a
gated xattn-dense block before every decoder block (`cross_attn_every_n_layers: 1`), its audio
transformer of 3 layers at 2048 (8 heads, inner 2048, `max_num_media` 128, `max_window_per_audio` 1:
the values of its `configs/inference.yaml`). Its CLAP encoder is replaced by a stub that returns random
(windows, 64, 2048) features, as bench/decode.py skips our encoder. Both sides get the same LM shape,
the same token ids and the same features; xattn gates are set to 0.5 on both (their init, 0, would
not change the work done, only the outputs). The LM keeps the full 151,936-token vocabulary on both
sides (factory.py resizes it to the tokenizer's 151,669 entries: 0.2% fewer head rows).

Sizes: `mid` is bench/decode.py's config (Qwen2-0.5B shape, 24 blocks); `af2-3b` is AF2-3B's
(Qwen2.5-3B shape: d 2048, FFN 11008, 36 blocks, 16 heads / 2 KV heads, tied embeddings, rope 1e6).
Audio: `--audios 1,8`: one row whose prompt holds that many `<audio>` tokens, each clip 12 windows of
64 tokens. The official code concatenates the clips' windows and runs its audio transformer over all
of them at once (8 x 768 tokens), ours runs it per clip; that is part of what is compared.

Method (both sides): each `generate` call is timed from its start (audio transformation included, the
encoder excluded) to the first call of a logits processor used as a clock: "prefill + first token",
best of `--repeats`. Decode is the median interval between clock calls (the prefill excluded), pooled
over the repeats. A second processor bans the end tokens so every call makes `--new-tokens`. One
2-token call per configuration warms up first. On CUDA the clock synchronises the device.

Run-time shim for the official code (its files stay untouched): transformers 5's `generate` drops
an all-ones attention mask before calling the model, but the official mixin's `forward(input_ids,
attention_mask, **kw)` requires one; the script gives that argument the default None (the LM's own
default, no padding at batch 1); checked under transformers 5.17.0 and 5.24.0. Nothing else is changed; the script counts the official
cross-attention calls and refuses to report if they never ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14)
QWEN25_3B = dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16)
COMMON = dict(
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=32768,
    tie_word_embeddings=True,
    rope_theta=1000000.0,
)
SIZES = {"mid": QWEN2_05B, "af2-3b": QWEN25_3B}
OFFICIAL_FILES = ("flamingo.py", "flamingo_lm.py", "helpers.py", "utils.py")
TOKENS_PER_WINDOW, AUDIO_DIM = 64, 2048


def lm_config(size: str):
    from transformers import AutoConfig

    return AutoConfig.for_model("qwen2", **SIZES[size], **COMMON)


class StepClock:
    """Logits processor used as a stopwatch: called once per generated token."""

    def __init__(self, sync):
        self.sync, self.t = sync, []

    def __call__(self, input_ids, scores):
        self.sync()
        self.t.append(time.perf_counter())
        return scores


class NoStop:
    """Bans the end tokens so that every call generates the same number of tokens."""

    def __init__(self, ids):
        self.ids = list(ids)

    def __call__(self, input_ids, scores):
        scores[:, self.ids] = -float("inf")
        return scores


def prompt_ids(n_audios: int):
    from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer

    tok = byte_level_tokenizer()
    special = add_special_tokens(tok)
    # bench/decode.py's prompt (76 tokens) with n <audio> tokens in place of its one.
    text = "<s>The task is audio captioning." + "<audio>" * n_audios + "Describe the sound in a sentence.<SEP>"
    return tok(text, add_special_tokens=False)["input_ids"], special


# ---------------------------------------------------------------------------------------- official
class StubCLAP(torch.nn.Module):
    """Stands in for the official CLAP: returns the features set beforehand, (B, windows, 64, 2048)."""

    def __init__(self):
        super().__init__()
        self.features: torch.Tensor | None = None

    def forward(self, audio_x):
        assert self.features is not None and self.features.shape[:2] == audio_x.shape[:2]
        return self.features


def load_official(src: Path):
    missing = [f for f in OFFICIAL_FILES if not (src / f).is_file()]
    if missing:
        sys.exit(
            f"official_decode: --official-src {src}: missing {', '.join(missing)} "
            "(from NVIDIA/audio-flamingo, branch audio_flamingo_2, audio_flamingo_2/src)"
        )
    for pkg in ("einops", "einops_exts"):
        try:
            __import__(pkg)
        except ImportError:
            sys.exit(f"official_decode: the official code needs the {pkg} package (pip install --no-deps {pkg})")
    sys.path.insert(0, str(src.resolve()))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.cuda.amp.autocast, deprecated, still works
        import flamingo  # type: ignore[import-not-found]
        import flamingo_lm  # type: ignore[import-not-found]
        import helpers  # type: ignore[import-not-found]
        import utils  # type: ignore[import-not-found]
    shim_mask(flamingo_lm.FlamingoLMMixin)
    return flamingo, flamingo_lm, helpers, utils


def shim_mask(mixin) -> None:
    """transformers 5.24's generate drops an all-ones attention mask, which the mixin's forward
    requires as an argument: give it the default None (the LM's own default)."""
    original = mixin.forward

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return original(self, input_ids, attention_mask, **kwargs)

    mixin.forward = forward


def build_official(src: Path, size: str, special, device, dtype):
    flamingo, flamingo_lm, helpers, utils = load_official(src)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        lm = AutoModelForCausalLM.from_config(lm_config(size))
        utils.extend_instance(lm, flamingo_lm.FlamingoLMMixin)
        lm.set_decoder_layers_attr_name("model.layers")
        model = flamingo.Flamingo(
            StubCLAP(),
            False,
            lm,
            special.eoc,
            special.audio,
            special.sep,
            clap_embed_dim=AUDIO_DIM,
            audio_transformer_kwargs=dict(
                n_head=8, n_layers=3, d_inner=2048, max_num_media=128, max_window_per_audio=1
            ),
            cross_attn_every_n_layers=1,
        )
    model.eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_gate"):
                p.fill_(0.5)
    calls = [0]

    def count(*_):
        calls[0] += 1

    for m in model.modules():
        if isinstance(m, helpers.MaskedCrossAttention):
            m.register_forward_hook(count)
    return model.to(device, dtype), calls


def official_runner(model, special, ids, n_audios, windows, device, dtype, gen):
    from transformers import LogitsProcessorList

    feats = torch.randn(1, n_audios * windows, TOKENS_PER_WINDOW, AUDIO_DIM, generator=gen).to(device, dtype)
    audio_x = torch.zeros(1, n_audios * windows, 1, device=device)  # only its shape is read (by the stub)
    audio_mask = torch.ones(1, n_audios * windows, device=device, dtype=dtype)
    lang_x = torch.tensor([ids], device=device)
    nostop = NoStop([special.eoc] + ([special.eos] if special.eos is not None else []))

    def call(clock, new_tokens):
        model.clap.features = feats
        model.generate(
            audio_x=audio_x,
            audio_x_mask=audio_mask,
            lang_x=lang_x,
            attention_mask=torch.ones_like(lang_x),
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=special.pad,
            logits_processor=LogitsProcessorList([nostop, clock]),
        )

    return call


# ---------------------------------------------------------------------------------------- ours
def build_ours(size: str, runtime: str, device, dtype):
    from audioflamingo.config import EncoderConfig
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.model.lite import LiteCausalLM
    from audioflamingo.presets import preset_config

    _, special = prompt_ids(1)
    cfg, _ = preset_config("af2")
    cfg.encoder = EncoderConfig(
        kind="mel_conv", output="dense", dim=AUDIO_DIM, tokens_per_window=TOKENS_PER_WINDOW, hidden=32
    )
    torch.manual_seed(0)
    with torch.device(device):
        if runtime == "lite":
            lm = LiteCausalLM(lm_config(size).to_dict())
        else:
            from transformers import AutoModelForCausalLM

            lm = AutoModelForCausalLM.from_config(lm_config(size))
        model = AudioFlamingo(cfg, lm, special).eval().requires_grad_(False)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("_gate"):
                p.fill_(0.5)
    return model.to(device, dtype)


def ours_runner(model, special, ids, n_audios, windows, device, dtype, gen):
    from audioflamingo.tasks import left_pad

    clips = [
        [torch.randn(windows, TOKENS_PER_WINDOW, AUDIO_DIM, generator=gen).to(device, dtype) for _ in range(n_audios)]
    ]
    input_ids, mask = left_pad([ids], special.pad, device)
    nostop = NoStop([special.eoc] + ([special.eos] if special.eos is not None else []))

    def call(clock, new_tokens):
        state = model.audio_state(clips, cache_kv=True)  # inside the timed call: official generate does it too
        model.generate(input_ids, mask, state, max_new_tokens=new_tokens, logits_processor=[nostop, clock])

    return call


# ---------------------------------------------------------------------------------------- method
def measure(call, new_tokens: int, repeats: int, sync) -> dict:
    call(StepClock(sync), min(2, new_tokens))  # warm-up
    firsts, steps, per_repeat = [], [], []
    for _ in range(repeats):
        clock = StepClock(sync)
        sync()
        t0 = time.perf_counter()
        call(clock, new_tokens)
        if len(clock.t) != new_tokens:
            raise RuntimeError(f"expected {new_tokens} clock calls, got {len(clock.t)}")
        firsts.append(clock.t[0] - t0)
        s = [b - a for a, b in zip(clock.t, clock.t[1:])]
        steps += s
        if s:
            per_repeat.append(statistics.median(s))
    return {
        "prefill_first_token_s": min(firsts),
        "prefill_first_token_all_s": firsts,
        "decode_s_per_token": statistics.median(steps) if steps else None,
        "decode_per_repeat_s": per_repeat,
    }


def prefill_flops(call) -> int:
    """Matrix-product FLOPs of one prefill + first token (torch's counter: matmuls and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call(StepClock(lambda: None), 1)
    return counter.get_total_flops()


def machine() -> dict:
    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line for line in text.splitlines() if line.startswith("flags")).split()
        info["cpu_flags"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    except (OSError, StopIteration):
        pass
    import subprocess

    import transformers

    info["transformers"] = transformers.__version__
    try:  # this project's code that was measured
        git = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        )
        info["commit"] = git.stdout.strip() or None
    except OSError:
        info["commit"] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    side = ap.add_mutually_exclusive_group(required=True)
    side.add_argument("--official-src", type=Path, help="folder with the official AF2 src files")
    side.add_argument("--ours", action="store_true", help="measure this project's model instead")
    ap.add_argument("--runtime", default="hf", choices=["hf", "lite"], help="ours: transformers LM or model.lite")
    ap.add_argument("--size", default="mid", choices=sorted(SIZES))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--audios", default="1,8", help="audio clips in the prompt, comma-separated")
    ap.add_argument("--windows", type=int, default=12, help="windows per clip (64 tokens each)")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--count-flops", action="store_true", help="count prefill FLOPs instead of timing")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    # Run as `python bench/official_decode.py` from a checkout that is not installed: the package is beside.
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    _, special = prompt_ids(1)
    t_build = time.perf_counter()
    if args.ours:
        model, calls = build_ours(args.size, args.runtime, device, dtype), None
        runner, label = ours_runner, f"ours ({args.runtime})"
    else:
        model, calls = build_official(args.official_src, args.size, special, device, dtype)
        runner, label = official_runner, "official AF2 code"
    res = {
        "side": label,
        "size": args.size,
        "device": args.device,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "windows": args.windows,
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "params_total": sum(p.numel() for p in model.parameters()),
        "build_s": time.perf_counter() - t_build,
        "load_avg_start": os.getloadavg(),
        "machine": machine(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("AUDIOFLAMINGO_")},
        "runs": [],
    }
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n in [int(a) for a in args.audios.split(",")]:
            ids, _ = prompt_ids(n)
            before = calls[0] if calls else 0
            call = runner(model, special, ids, n, args.windows, device, dtype, gen)
            if args.count_flops:
                res["runs"].append({"audios": n, "prefill_flops": prefill_flops(call)})
                print(
                    f"{label}, {n} audio(s): prefill + first token {res['runs'][-1]['prefill_flops'] / 1e9:.1f} GFLOP"
                )
                continue
            try:
                r = measure(call, args.new_tokens, args.repeats, sync)
            except IndexError as err:
                if args.ours:
                    raise
                # audio_flamingo_2/src fails at the first cached decode step (see the docstring): its
                # prefill + first token is still measured, its decode cannot be.
                r = measure(call, 1, args.repeats, sync)
                r["decode_error"] = f"IndexError: {err}"
            if calls is not None and calls[0] == before:
                sys.exit("official_decode: the official cross-attention never ran; the numbers would be meaningless")
            r.update(audios=n, prompt_tokens=len(ids), audio_tokens=n * args.windows * TOKENS_PER_WINDOW)
            res["runs"].append(r)
            print(
                f"{label}, {n} audio(s) x {args.windows} windows: prefill + first token "
                f"{r['prefill_first_token_s']:.3f} s, decode "
                + (f"{r['decode_s_per_token'] * 1e3:.1f} ms/token" if r["decode_s_per_token"] else "fails"),
                flush=True,
            )
    res["load_avg_end"] = os.getloadavg()
    if device.type == "cuda":
        res["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if len(res["runs"]) > 1 and all(r.get("decode_s_per_token") for r in res["runs"]):
        one = res["runs"][0]["decode_s_per_token"]
        res["decode_ratio_vs_first"] = [r["decode_s_per_token"] / one for r in res["runs"]]
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
