"""Training throughput, peak memory and MFU of the AF2-sized SFT stage (random weights, random data).

af2-3b: an LM shaped like Qwen2.5-3B (36 layers, d 2048, MLP 11008, 16 heads, 2 KV heads, vocab
151936, tied embeddings, rope_theta 1e6) with AF2's xattn-dense before every layer and its 3
transformation layers; each sample is one clip of 12 windows x 64 dense tokens x 2048 features
(random features go straight to the transformation: the frozen audio encoder is not run, as in
training with cached features). tiny: the same layout, small, for a CPU check.

Configurations (--configs): plain (one process, autocast) or fsdp (FSDP2 over the processes, bf16
parameters with fp32 gradient reductions via MixedPrecisionPolicy), each with activation
checkpointing (+ac) or without. A configuration that runs out of memory is reported and skipped.

FLOPs per sample (model FLOPs: a recomputed forward is not counted), T text tokens, A audio tokens:
  weights: c x 2 x (tokens through the weight) x N, c = 3 (forward + 2 backward) for trained
           weights, 2 for frozen ones a gradient passes through; LM layers: T tokens; the tied
           head: the positions followed by a target (T - 2 in this benchmark's batch: TrainStep
           computes logits only there, since 2026-12-04); xattn q/out/FF: T; xattn to_kv: A;
           transformation layers: A
  attention: 6 x 2 x (query-key pairs) x width per layer: LM causal T^2/2 x 2048, cross T x A x 512,
             transformation A^2 x 2048 (bidirectional)
MFU = (FLOPs per step / step time) / (--peak-flops x GPUs); the default peak is the H100/H200 dense
bf16 rate (989e12).

    python bench/train_gpu.py --device cuda --size af2-3b --out bench/results/train-gpu.json
    python bench/train_gpu.py --device cpu --size tiny           # a check of the script on a CPU
    torchrun --nproc_per_node 8 bench/train_gpu.py --configs fsdp+ac   # FSDP over 8 GPUs
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _stub_audio_readers() -> None:
    """The model's modules import the audio file readers (soundfile, soxr); this benchmark reads no
    audio, so on a machine without them (a bare GPU image) empty stand-ins let it run."""
    import importlib.util
    import types

    for name in ("soundfile", "soxr"):
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)


_stub_audio_readers()

from audioflamingo.config import EncoderConfig  # noqa: E402
from audioflamingo.model.flamingo import AudioFlamingo  # noqa: E402
from audioflamingo.presets import preset_config  # noqa: E402
from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer  # noqa: E402
from audioflamingo.train import sharding  # noqa: E402
from audioflamingo.train.stages import param_groups, set_trainable  # noqa: E402
from audioflamingo.train.step import TrainStep  # noqa: E402

# The AF2-3B preset's LM (a Qwen2.5-3B shape), one definition for the whole project.
QWEN25_3B = dict(preset_config("af2")[1])
TINY_LM = dict(QWEN25_3B, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4)
TINY_LM.update(vocab_size=4096, num_key_value_heads=2)
SIZES = {"af2-3b": (QWEN25_3B, 12, 64, 2048), "tiny": (TINY_LM, 12, 8, 64)}  # LM, windows, tokens, features


def build(size: str, device: torch.device):
    from transformers import AutoConfig, AutoModelForCausalLM

    lm_kw, windows, tokens, feats = SIZES[size]
    cfg, _ = preset_config("af2")
    cfg.encoder = EncoderConfig(kind="mel_conv", output="dense", dim=feats, tokens_per_window=tokens, hidden=32)
    if size == "tiny":
        cfg.transformation = replace(cfg.transformation, dim=feats, num_heads=4, ffn_dim=2 * feats)
        cfg.xattn = replace(cfg.xattn, heads=2, dim_head=32)
    tok = byte_level_tokenizer()
    special = add_special_tokens(tok)
    kw = dict(lm_kw)
    torch.manual_seed(0)
    with device:  # initialised where it runs: a 4.5B-parameter init on the CPU takes minutes
        lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(kw.pop("model_type"), **kw))
        model = AudioFlamingo(cfg, lm, special)
    return model, windows


def count_flops(model, text: int, audio: int, stage: str, targets: int | None = None) -> dict[str, float]:
    """Model FLOPs of one sample's forward + backward (the formula in the module docstring), as
    {"weights": ..., "attention": ...}. targets: positions the output head runs at (default: all)."""
    from audioflamingo.model.fusion import find_decoder_layers

    lm_cfg = model.lm.config
    c_lm = 6 if stage == "sft" else 4
    layers = find_decoder_layers(model.lm)
    n_layers = sum(p.numel() for p in layers.parameters())
    n_head = lm_cfg.vocab_size * lm_cfg.hidden_size
    weights = c_lm * (text * n_layers + (text if targets is None else targets) * n_head)
    head_dim = getattr(lm_cfg, "head_dim", None) or lm_cfg.hidden_size // lm_cfg.num_attention_heads
    attention = 6 * 2 * len(layers) * (text * text / 2) * lm_cfg.num_attention_heads * head_dim
    for block in model.fusion.xattn.values():
        n_kv = sum(p.numel() for p in block.attn.to_kv.parameters())
        weights += 6 * text * (sum(p.numel() for p in block.parameters()) - n_kv) + 6 * audio * n_kv
        attention += 6 * 2 * text * audio * block.attn.heads * block.attn.dim_head
    t = model.transformation
    weights += 6 * audio * sum(p.numel() for p in t.parameters())
    attention += 6 * 2 * t.cfg.num_layers * audio * audio * t.cfg.dim
    return {"weights": float(weights), "attention": float(attention)}


def batch(model, windows: int, micro: int, seq: int, device: torch.device):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(300, model.lm.config.vocab_size, (micro, seq), generator=g)
    ids[:, 1] = model.special.audio
    labels = ids.clone()
    labels[:, :2] = -100
    c = model.config.encoder
    clips = [[torch.randn(windows, c.tokens_per_window, c.dim, generator=g).to(device)] for _ in range(micro)]
    return ids.to(device), torch.ones_like(ids).to(device), labels.to(device), clips


def peak_mb(device: torch.device) -> float:
    return sharding.peak_memory_mb(device)


def run_config(name: str, args, device: torch.device) -> dict:
    mode, _, ac = name.partition("+")
    model, windows = build(args.size, device)
    set_trainable(model, args.stage)
    if ac:
        sharding.enable_activation_checkpointing(model)
    step = TrainStep(model)
    bf16 = args.precision == "bf16"
    if mode == "fsdp":
        sharding.shard(step, model, device, bf16)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-5)
    data = batch(model, windows, args.micro_batch, args.seq_len, device)
    audio = windows * model.config.encoder.tokens_per_window
    targets = args.seq_len - 2  # batch(): the first two labels are not targets
    flops = args.micro_batch * sum(count_flops(model, args.seq_len, audio, args.stage, targets).values())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and mode == "plain")
    world = dist.get_world_size() if dist.is_initialized() else 1
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            loss = step(*data)
        (loss / (args.micro_batch * args.seq_len)).backward()
        if mode == "fsdp":
            sharding.clip_grad_norm(params, 1.0)
        else:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    tokens = args.micro_batch * args.seq_len * world
    return {
        "config": name,
        "step_s": dt,
        "tokens_per_s": tokens / dt,
        "tokens_per_s_per_device": tokens / dt / world,
        "flops_per_step": flops * world,
        "mfu": flops / dt / args.peak_flops,
        "peak_mem_mb": peak_mb(device),
        "trained_params": sum(p.numel() for p in params),
        "total_params": sum(p.numel() for p in model.parameters()),
        "loss_last": float(loss.detach()) / (args.micro_batch * args.seq_len),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", choices=sorted(SIZES), default="af2-3b")
    ap.add_argument("--stage", choices=["sft", "pretrain"], default="sft", help="pretrain: the LM frozen")
    ap.add_argument("--configs", default="plain+ac,plain,fsdp+ac,fsdp", help="comma-separated: plain|fsdp[+ac]")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=1024, help="text tokens per sample")
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--peak-flops", type=float, default=989e12, help="peak dense bf16 FLOP/s of one device")
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument(
        "--max-seconds", type=float, default=0, help="start no further configuration after this long (0: no limit)"
    )
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device visible")
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    if any(n.startswith("fsdp") for n in names) and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if world > 1:
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    if world > 1 and any(n.startswith("plain") for n in names):
        sys.exit("plain configurations run in one process; under torchrun pass --configs fsdp or fsdp+ac")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    out = {
        "size": args.size,
        "stage": args.stage,
        "device": gpu or platform.processor() or platform.machine(),
        "devices": world,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "micro_batch": args.micro_batch,
        "seq_len": args.seq_len,
        "precision": args.precision,
        "peak_flops": args.peak_flops,
        "runs": [],
    }
    began = time.perf_counter()
    for name in names:
        if args.max_seconds and time.perf_counter() - began > args.max_seconds:
            out["runs"].append({"config": name, "error": f"skipped: --max-seconds {args.max_seconds:g} reached"})
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        try:
            row = run_config(name, args, device)
        except torch.OutOfMemoryError as err:  # report it and go on to the next configuration
            row = {"config": name, "error": "out of memory: " + str(err).splitlines()[0][:200]}
        except RuntimeError as err:
            if "out of memory" not in str(err).lower():
                raise
            row = {"config": name, "error": "out of memory: " + str(err).splitlines()[0][:200]}
        row["wall_s"] = time.perf_counter() - t0
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        out["runs"].append(row)
        if rank == 0:
            print(json.dumps(row), flush=True)
    if rank == 0:
        text = json.dumps(out, indent=2)
        print(text)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text + "\n")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
