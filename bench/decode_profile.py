"""Where a batch-1 decode step's time goes: torch.profiler over a few steps of `bench/decode.py`'s
model, grouped by operator and by the module (LM attention, LM MLP, xattn, head) that issued it.

    python bench/decode.py --runtime lite --profile --batches 1 --skip-uncached --skip-scaling
"""

from __future__ import annotations

import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function


def _label_modules(model) -> list:
    """Forward hooks that put each decode-relevant module's work in a named profiler range."""
    handles = []

    def wrap(module, name):
        ctx: list = []

        def pre(m, args, kwargs=None):
            r = record_function(name)
            r.__enter__()
            ctx.append(r)

        def post(m, args, out):
            ctx.pop().__exit__(None, None, None)

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))

    lm = model.lm
    for layer in lm.model.layers:
        wrap(layer.self_attn, "lm.attention")
        wrap(layer.mlp, "lm.mlp")
    wrap(lm.lm_head, "lm.head")
    for blk in model.fusion.xattn.values():
        wrap(blk.attn, "xattn.cross_attention")
        wrap(blk.ff, "xattn.ff")
    return handles


def profile_decode(model, ids, mask, clips, steps: int = 6) -> dict:
    """Profile `steps` decode steps (prefill excluded by starting the profiler at the first step)."""
    state = model.audio_state(clips, cache_kv=True)
    prof = profile(activities=[ProfilerActivity.CPU])
    marks: list[float] = []

    def start_at_first_step(input_ids, scores):
        if not marks:
            prof.__enter__()
        marks.append(time.perf_counter())
        return scores

    handles = _label_modules(model)
    calls: list[int] = []  # LM forwards while profiling: the steps the totals are divided by
    handles.append(model.lm.register_forward_pre_hook(lambda m, a: calls.append(1) if marks else None))
    try:
        kw: dict = dict(max_new_tokens=steps + 1, do_sample=False, logits_processor=[start_at_first_step])
        if model.is_lite:
            kw["eos_token_id"] = []
        else:
            from transformers import LogitsProcessorList

            kw.update(min_new_tokens=steps + 1, logits_processor=LogitsProcessorList([start_at_first_step]))
        with torch.no_grad():
            model.generate(ids, mask, state, **kw)
        prof.__exit__(None, None, None)
    finally:
        for h in handles:
            h.remove()
    n = len(calls)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=18))
    per_step = {
        e.key: e.cpu_time_total / 1e3 / n
        for e in events
        if e.key in ("lm.attention", "lm.mlp", "lm.head", "xattn.cross_attention", "xattn.ff")
    }
    wall = (marks[-1] - marks[0]) / (len(marks) - 1) * 1e3
    per_step["other (python, norms, embedding, fusion hooks)"] = wall - sum(per_step.values())
    for k, v in per_step.items():
        print(f"{k:50s} {v:7.2f} ms/step")
    print(f"{'step (wall, profiled)':50s} {wall:7.2f} ms/step")
    return {"ms_per_step": per_step, "step_wall_ms": wall}
