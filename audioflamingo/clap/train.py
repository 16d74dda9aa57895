"""`audioflamingo clap train RECIPE.yaml`: contrastive training of AF-CLAP on the training engine
(torch.distributed processes, mixture sampler, atomic checkpoints, exact resume).

    clap: {text: minilm, proj_dim: 128, encoder: {kind: mel_conv, dim: 128, tokens_per_window: 4}}
    output_dir: runs/clap
    loss: af2                 # af2 (positives + compositional negatives) | infonce
    train: {micro_batch_size: 32, steps: 500, lr: 3.0e-4, warmup_steps: 20, save_every: 100}
    datasets: [{manifest: data/train.jsonl, weight: 1.0}]

Records give the positive caption in `output` (plus optional `positives`) and optional `negatives`.
With N processes the embeddings of the whole global batch are gathered, so every process scores
against every text, as one process with the global batch would.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


from audioflamingo.audio.io import load_audio
from audioflamingo.clap.losses import af2_loss, info_nce
from audioflamingo.clap.model import AFClap, ClapConfig
from audioflamingo.config import EncoderConfig, WindowConfig
from audioflamingo.data.manifest import load_manifest
from audioflamingo.data.mixture import MixtureSampler
from audioflamingo.errors import AudioFlamingoError
from audioflamingo.train import checkpoint
from audioflamingo.train.stages import lr_lambda, param_groups
from audioflamingo.train.trainer import Env, TrainingDiverged, _peak_rss_mb

TRAIN_DEFAULTS = dict(
    micro_batch_size=16,
    steps=100,
    lr=3e-4,
    warmup_steps=10,
    weight_decay=0.1,
    clip_grad=1.0,
    save_every=100,
    keep_last=2,
    schedule="cosine",
    freeze_text=False,
    max_negatives=8,
)


def load_clap_recipe(path) -> dict:
    from audioflamingo.train.recipe_check import RecipeError, read_yaml

    p = Path(path)
    r = read_yaml(p)  # missing file, bad UTF-8, YAML syntax, repeated keys: one line each
    if not isinstance(r, dict):
        kind = "empty" if r is None else f"a {type(r).__name__}"
        raise RecipeError(f"{p}: a CLAP recipe is a mapping (clap, datasets, train, ...); this one is {kind}")
    unknown = set(r) - {"clap", "output_dir", "seed", "loss", "train", "datasets"}
    if unknown:
        raise ValueError(f"{p}: unknown key(s) {', '.join(sorted(unknown))}")
    base = p.parent
    rel = lambda x: str(x if Path(x).is_absolute() else base / x)  # noqa: E731
    r["output_dir"] = rel(r.get("output_dir", f"runs/{p.stem}"))
    r["datasets"] = [{**d, "manifest": rel(d["manifest"])} for d in r.get("datasets", [])]
    if not r["datasets"]:
        raise ValueError(f"{p}: no datasets")
    train = {**TRAIN_DEFAULTS, **(r.get("train") or {})}
    bad = set(train) - set(TRAIN_DEFAULTS)
    if bad:
        raise ValueError(f"{p}: unknown train key(s) {', '.join(sorted(bad))}")
    r["train"] = train
    r.setdefault("seed", 0)
    r.setdefault("loss", "af2")
    if r["loss"] not in ("af2", "infonce"):
        raise ValueError(f"{p}: loss must be af2 or infonce")
    c = dict(r.get("clap") or {})
    if isinstance(c.get("text"), str) and c["text"] not in ("minilm",):
        c["text"] = rel(c["text"])
    r["clap"] = c
    return r


def build_clap(spec: dict, seed: int) -> AFClap:
    spec = dict(spec)
    text = spec.pop("text", "minilm")
    cfg = ClapConfig()
    if "window" in spec:
        cfg.window = WindowConfig(**spec.pop("window"))
    if "encoder" in spec:
        cfg.encoder = EncoderConfig(**{"frozen": False, **spec.pop("encoder")})
    for k, v in spec.items():
        setattr(cfg, k, v)
    if isinstance(text, dict):  # {"random": {...BertConfig kwargs}} for tests
        return AFClap.build(cfg=cfg, text_config=text.get("random", text), seed=seed)
    return AFClap.build(text_dir=None if text == "minilm" else text, cfg=cfg, seed=seed)


class ClapStep(nn.Module):
    def __init__(self, model: AFClap, loss: str, world: int):
        super().__init__()
        self.model, self.loss, self.world = model, loss, world

    def forward(self, waves, positives, negatives):
        m = self.model
        a = m.embed_waves(waves)
        n_pos = max(len(p) for p in positives)
        flat = [t for p in positives for t in p]
        t = m.embed_texts(flat)
        d = t.shape[-1]
        pos = t.new_zeros(len(waves), n_pos, d)
        pmask = torch.zeros(len(waves), n_pos, dtype=torch.bool, device=t.device)
        k = 0
        for i, p in enumerate(positives):
            pos[i, : len(p)], pmask[i, : len(p)] = t[k : k + len(p)], True
            k += len(p)
        neg = nmask = None
        n_neg = max((len(n) for n in negatives), default=0)
        if self.loss == "af2" and n_neg:
            e = m.embed_texts([x for n in negatives for x in n])
            neg = e.new_zeros(len(waves), n_neg, d)
            nmask = torch.zeros(len(waves), n_neg, dtype=torch.bool, device=e.device)
            k = 0
            for i, n in enumerate(negatives):
                if n:
                    neg[i, : len(n)], nmask[i, : len(n)] = e[k : k + len(n)], True
                    k += len(n)
        if self.world > 1:
            a, pos, pmask = (_gather(x) for x in (a, pos, pmask))
            if neg is not None:
                neg, nmask = _gather(neg), _gather(nmask)
        # Every process computes the same global loss over the gathered batch.
        if self.loss == "infonce":
            return info_nce(a, pos[:, 0], m.scale)
        return af2_loss(a, pos, neg, m.scale, pmask, nmask)


def _gather(x: torch.Tensor) -> torch.Tensor:
    """Every process's rows, this process's own rows keeping their graph (open_clip's scheme)."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)


def train_clap(recipe_path, resume: bool = False, progress: bool = False) -> Path:
    from audioflamingo.progress import progress_bar

    r = load_clap_recipe(recipe_path)
    env, tr = Env(), r["train"]
    out = Path(r["output_dir"])
    model = build_clap(r["clap"], r["seed"]).to(env.device)
    if tr["freeze_text"]:
        model.text.requires_grad_(False)
    datasets = [load_manifest(d["manifest"], needs_audio="CLAP training") for d in r["datasets"]]
    sampler = MixtureSampler(
        [len(d) for d in datasets],
        [d.get("weight", 1.0) for d in r["datasets"]],
        sum(len(d) for d in datasets),
        r["seed"],
    )
    opt = torch.optim.AdamW(param_groups(model, tr["weight_decay"]), lr=float(tr["lr"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(tr["warmup_steps"], tr["steps"], tr["schedule"], 0.0))
    step, skipped = 0, 0
    ckpt = checkpoint.latest(out) if resume else None
    if ckpt is not None:
        state = checkpoint.load_into(ckpt, model, opt, sched)
        sampler.load_state_dict(state["sampler"])
        step, skipped = state["stage_step"], state.get("skipped", 0)
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
    wrapped = ClapStep(model, r["loss"], env.world)
    params = [p for p in model.parameters() if p.requires_grad]
    if env.world > 1:  # same start everywhere, whatever each process's RNG did
        for t in model.state_dict().values():
            dist.broadcast(t, 0)
    micro = tr["micro_batch_size"]
    wave_cache: dict = {}
    bar = progress_bar(tr["steps"], "clap", "step", enabled=progress and env.main, initial=step)
    model.train()
    while step < tr["steps"]:
        t0 = time.perf_counter()
        items = sampler.take(micro * env.world)[env.rank * micro : (env.rank + 1) * micro]
        waves, pos, neg = [], [], []
        for d, i in items:
            rec = datasets[d][i]
            key = (str(rec.audio), rec.offset, rec.duration)
            try:
                if len(wave_cache) > 20_000:
                    wave_cache.clear()
                if key not in wave_cache:  # decoded once: clips recur every epoch
                    wave_cache[key] = load_audio(
                        rec.audio, model.cfg.window.sample_rate, None, rec.offset, rec.duration
                    )
                waves.append(wave_cache[key])
            except AudioFlamingoError:
                skipped += 1
                continue
            pos.append([rec.output] + list(rec.positives or []))
            neg.append(list(rec.negatives or [])[: tr["max_negatives"]])
        if env.world > 1 and len(waves) != micro:
            raise AudioFlamingoError("unreadable clips in multi-process CLAP training: run `data validate` first")
        loss = wrapped(waves, pos, neg)
        loss.backward()
        if env.world > 1:
            # Each process's backward reaches the towers only through its own rows: summing over processes
            # gives the one-process gradient. The temperature sees the whole gathered batch in every
            # process, so its gradient is already complete there and is averaged instead.
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
            if model.logit_scale.grad is not None:
                model.logit_scale.grad /= env.world
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"CLAP loss became {value} at step {step + 1}; last good checkpoint: {checkpoint.latest(out)}"
            )
        if tr["clip_grad"]:
            torch.nn.utils.clip_grad_norm_(params, tr["clip_grad"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        step += 1
        if env.main:
            with (out / "metrics.jsonl").open("a") as f:
                f.write(
                    json.dumps(
                        {
                            "step": step,
                            "loss": value,
                            "temperature": float(1 / model.scale.detach()),
                            "lr": sched.get_last_lr()[0],
                            "samples_per_s": len(waves) * env.world / (time.perf_counter() - t0),
                            "skipped_clips": skipped,
                            "peak_rss_mb": _peak_rss_mb(),
                        }
                    )
                    + "\n"
                )
        bar.set_postfix(loss=f"{value:.4f}")
        bar.update(1)
        if tr["save_every"] and (step % tr["save_every"] == 0 or step == tr["steps"]):
            if env.main:
                checkpoint.save(
                    out,
                    step,
                    model,
                    model.tokenizer,
                    opt,
                    sched,
                    {
                        "stage_index": 0,
                        "stage_step": step,
                        "global_step": step,
                        "sampler": sampler.state_dict(),
                        "skipped": skipped,
                    },
                    tr["keep_last"],
                )
            if env.world > 1:
                dist.barrier()
    bar.close()
    model.eval()
    if env.main:
        model.save_pretrained(out / "final")
    return out / "final"


def zero_shot(model: AFClap, waves, labels: list[str], template: str = "{}") -> torch.Tensor:
    """(N, L) probabilities of each label for each clip."""
    with torch.no_grad():
        a = model.embed_waves(waves)
        t = model.embed_texts([template.format(l) for l in labels])
        return torch.softmax(model.scale * a @ t.t(), dim=-1)
