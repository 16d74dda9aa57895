"""Where a static-cache decode step's time goes on a GPU: the captured graph alone vs the whole step.

Same model as bench/decode_gpu.py (AF2-3B layout, bf16, 1 audio of 12 windows, batch 1). Times, per
token, with CUDA events over 100 back-to-back replays: (a) the CUDA graph alone (eager-kernel graph and
torch.compile graph), (b) the graph plus the host work `generate` does around it (argmax, feeding the
token back) without a device sync, (c) the same with the per-token EOS check's sync. (a) against the
HBM floor says how far the kernels are from the bandwidth; (b) and (c) say what the loop adds.

    python bench/decode_gpu_replay.py --out bench/results/decode-gpu-replay.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from audioflamingo.model.static_decode import StaticDecodeStep, capture  # noqa: E402
from audioflamingo.tasks import left_pad  # noqa: E402
from bench.decode_gpu import build, copy_bandwidth, step_bytes  # noqa: E402


def per_token_ms(fn, n: int = 100) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    start.record()
    for _ in range(n):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="af2-3b", choices=["af2-3b", "mid"])
    ap.add_argument("--out")
    args = ap.parse_args()
    dev = torch.device("cuda")
    model, tok = build(args.size, dev, torch.bfloat16)
    prompt = tok(
        "<s>The task is audio captioning.<audio>Describe the sound in a sentence.<SEP>", add_special_tokens=False
    )["input_ids"]
    ids, mask = left_pad([prompt], model.special.pad, dev)
    clips = [[torch.randn(12, 64, 2048, device=dev, dtype=torch.bfloat16)]]
    res: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    with torch.no_grad():
        state = model.audio_state(clips)
        with model.conditioned(state):
            out = model.lm(input_ids=ids, attention_mask=mask, use_cache=True)
        model.fusion.follow_layout(model.lm)
        floor = step_bytes(model, 1, 768, len(prompt) + 64) / copy_bandwidth(dev) * 1e3
        res["floor_ms"] = floor
        for backend in (None, "inductor"):
            step = StaticDecodeStep(model, ids.shape[1], 1, 64, out.past_key_values, state, mask)
            step.compile_backend = backend
            step.advance(torch.tensor([5], device=dev))
            run = capture(step)

            def loop(sync: bool, run=run, step=step):
                nxt = run().argmax(-1)
                step.token.copy_(nxt[:, None])  # what advance() writes (position/slot kept: same slot)
                if sync:
                    bool((nxt == -1).all())

            name = backend or "eager-kernels"
            res[name] = {
                "graph_only_ms": per_token_ms(run),
                "with_host_work_ms": per_token_ms(lambda: loop(False)),
                "with_sync_ms": per_token_ms(lambda: loop(True)),
            }
            print(name, {k: round(v, 3) for k, v in res[name].items()}, f"floor {floor:.3f} ms", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
