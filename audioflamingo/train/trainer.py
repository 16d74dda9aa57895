"""The training loop: stages from a recipe on torch.distributed (1 CPU process, N gloo processes or
N GPUs with the same code), exact resume, skip-and-count for unreadable clips, stop on NaN.

Replicated (DDP, the default) or sharded (`train.parallel: fsdp`, see sharding.py). Under FSDP every
rank must run the same collectives: a rank whose share of a micro-batch is empty runs a stand-in row
with no targets, and validation gives every rank the same number of batches."""

from __future__ import annotations

import json
import math
import os
import time
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from audioflamingo.audio.io import load_audio
from audioflamingo.data.icl import icl_path, load_icl
from audioflamingo.data.manifest import load_manifest
from audioflamingo.data.mixture import MixtureSampler
from audioflamingo.data.samples import tokenized_with_budget
from audioflamingo.errors import AudioFlamingoError
from audioflamingo.text.templates import IGNORE
from audioflamingo.train import checkpoint, metrics_log, sharding
from audioflamingo.train.recipe import Recipe, StageSpec
from audioflamingo.train.stages import count, make_optimizer, set_trainable
from audioflamingo.train.step import TrainStep


# Per-clip cache of encoder features (or waveforms, while the encoder trains): a corpus' worth of
# 10 s clips' features is ~20 KB each, so 2 GB holds about 100k clips, or about 3k waveforms.
CACHE_BYTES = 2 * 2**30


class TrainingDiverged(AudioFlamingoError):
    pass


class Env:
    """Rank, world size and device, from torchrun's environment (a single process without it)."""

    def __init__(self, group: bool = False):
        """group: a process group even for one process (FSDP needs one to shard over)."""
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() and os.environ.get("AF_FORCE_CPU") != "1"
        self.device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        elif group and not dist.is_initialized():  # one process, no torchrun: no rendezvous needed
            dist.init_process_group("nccl" if cuda else "gloo", store=dist.HashStore(), rank=0, world_size=1)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, x: float) -> float:
        if self.world == 1:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())

    def each(self, x: float) -> list[float]:
        """x of every rank, in rank order."""
        if self.world == 1:
            return [x]
        t = torch.zeros(self.world, dtype=torch.float64, device=self.device)
        t[self.rank] = x
        dist.all_reduce(t)
        return t.tolist()


def text_sample(rec, tok, max_tokens: int):
    """LM pre-training: the record's words as plain text, every token a target, no audio.

    An ICL episode (inline shots) keeps its interleaved template, <audio> markers included but no
    features, with its answers as the targets: reading a label off the examples is a text skill
    (an induction head), learnt here at text-only speed before the audio stages need it."""
    if rec.shots:
        ids, labels, _ = tokenized_with_budget(rec, tok, [], max_tokens)
        return ids, labels, []
    parts = (
        [rec.instruction, rec.output]
        if rec.task != "dialogue"
        else [x for t in rec.turns or [] for x in (t["user"], t["assistant"])]
    )
    ids = tok(" ".join(p for p in parts if p), add_special_tokens=False)["input_ids"]
    ids = ([tok.bos_token_id] if tok.bos_token_id is not None else []) + ids + [tok.eos_token_id]
    ids = ids[:max_tokens]
    return ids, list(ids), []


class StageData:
    def __init__(self, stage: StageSpec, tokenizer, recipe: Recipe, stage_index: int):
        self.tok, self.train = tokenizer, recipe.train
        self.records = [load_manifest(d.manifest) for d in stage.datasets]
        for n, d in enumerate(stage.datasets):
            if d.questions:
                kinds = set(d.questions)
                self.records[n] = [r for r in self.records[n] if r.question in kinds]
                if not self.records[n]:
                    raise ValueError(f"{d.manifest}: no records of the question kinds {', '.join(sorted(kinds))}")
            if d.answers:
                wanted = set(d.answers)
                self.records[n] = [r for r in self.records[n] if r.output in wanted]
                if not self.records[n]:
                    raise ValueError(f"{d.manifest}: no records answered {' or '.join(sorted(wanted))}")
        for d, recs in zip(stage.datasets, self.records):
            for r in recs:
                if d.task_description and not r.task_description:
                    r.task_description = d.task_description
                if d.instruction and not r.instruction:
                    r.instruction = d.instruction
        self.text_only = stage.kind == "lm"
        for d, recs in zip(stage.datasets, self.records):
            if not self.text_only and any(r.audio is None for r in recs):
                raise ValueError(f"{d.manifest}: has text records (no audio); they can only train `kind: lm` stages")
        self.shots = [d.icl_shots for d in stage.datasets]
        self.by_id = [{r.id: r for r in recs} for recs in self.records]
        self.icl = []
        for d in stage.datasets:
            if d.icl_shots:
                f = Path(d.icl_file) if d.icl_file else icl_path(d.manifest)
                if not f.is_file():
                    raise FileNotFoundError(f"{f}: no neighbour file; run `audioflamingo data build-icl {d.manifest}`")
                self.icl.append(load_icl(f))
            else:
                self.icl.append(None)
        sizes = [len(r) for r in self.records]
        for d, n in zip(stage.datasets, sizes):
            if n == 0:
                raise ValueError(f"{d.manifest}: no records")
        self.sampler = MixtureSampler(
            sizes, [d.weight for d in stage.datasets], stage.epoch_size or sum(sizes), recipe.seed * 1000 + stage_index
        )
        self.val = [r for v in stage.val for r in load_manifest(v, needs_audio="validation")]

    def item(self, d: int, i: int):
        rec = self.records[d][i]
        if self.text_only:
            return text_sample(rec, self.tok, self.train.max_tokens)
        shots = []
        if self.icl[d] is not None:
            ids = self.icl[d].get(rec.id, [])[: self.shots[d]]
            shots = [self.by_id[d][x] for x in reversed(ids) if x in self.by_id[d]]  # nearest last
        return tokenized_with_budget(rec, self.tok, shots, self.train.max_tokens, self.train.lowercase)


class Trainer:
    def __init__(self, recipe: Recipe, resume: bool = False, progress: bool = True):
        self.recipe, self.resume = recipe, resume
        self.sharded = recipe.train.parallel == "fsdp"
        self.env = Env(group=self.sharded)
        self.out = Path(recipe.output_dir)
        self.progress = progress and self.env.main
        self.features: OrderedDict = OrderedDict()
        self.cache_bytes = 0
        self.skipped = 0

    # ------------------------------------------------------------------ setup
    def build_model(self, device: torch.device | None = None):
        from audioflamingo.model.flamingo import AudioFlamingo
        from audioflamingo.presets import PRESETS, build
        from audioflamingo.text.lite_tokenizer import load_tokenizer

        m = self.recipe.model
        init = str(m.get("init", "tiny"))
        if init in PRESETS:
            if m.get("positions"):
                raise ValueError(
                    f"{self.recipe.path}: model.positions switches a model directory's positions; "
                    f"preset {init!r} has its own (set it in a model directory's config instead)"
                )
            model, tok = build(
                init,
                lm_dir=m.get("lm"),
                clap_dir=m.get("clap"),
                tokenizer_dir=m.get("tokenizer"),
                lm_overrides=m.get("lm_overrides"),
                seed=self.recipe.seed,
                afclap_dir=m.get("afclap"),
            )
        else:
            model = AudioFlamingo.from_pretrained(init, positions=m.get("positions"))
            tok = load_tokenizer(init)
        return model.to(device or self.env.device), tok

    def _clip_features(self, model, ref):
        """Encoder features of one clip. A frozen encoder's features are cached; a trained one's are
        recomputed every step (with gradients) from the cached waveform."""
        w = model.config.window
        trained = any(p.requires_grad for p in model.encoder.parameters())
        key = (ref, w.max_windows, trained)
        if key in self.features:
            self.features.move_to_end(key)
            hit = self.features[key]
            return model.encode_clips([hit], [str(ref.path)])[0] if trained else hit
        wave = load_audio(ref.path, w.sample_rate, w.max_duration_seconds, ref.offset, ref.duration)
        feats = model.encode_clips([wave], [str(ref.path)])[0]
        kept = wave if trained else feats.detach()
        self.features[key] = kept
        self.cache_bytes += kept.nbytes  # numpy arrays and tensors both have it
        while self.cache_bytes > CACHE_BYTES and len(self.features) > 1:
            self.cache_bytes -= self.features.popitem(last=False)[1].nbytes
        return feats

    def _prepare(self, model, data: StageData, items, tok):
        """Tokenise and encode a micro-batch; unreadable clips drop their sample (counted)."""
        rows = []
        for d, i in items:
            ids, labels, refs = data.item(d, i)
            try:
                clips = [self._clip_features(model, r) for r in refs]
            except AudioFlamingoError:
                self.skipped += 1
                continue
            rows.append((ids, labels, clips))
        return rows

    def _tensors(self, model, rows):
        pad = model.special.pad
        width = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for n, (i, l, _) in enumerate(rows):
            ids[n, : len(i)], labels[n, : len(l)], mask[n, : len(i)] = torch.tensor(i), torch.tensor(l), 1
        dev = self.env.device
        return ids.to(dev), mask.to(dev), labels.to(dev), [r[2] for r in rows]

    # ------------------------------------------------------------------ loop
    def run(self) -> Path:
        env, rc, tr = self.env, self.recipe, self.recipe.train
        # Sharded runs build on the CPU: fully_shard moves each unit to the device as it shards it,
        # so the whole model is never on one device.
        model, tok = self.build_model(torch.device("cpu") if self.sharded else None)
        start_stage, state = 0, None
        ckpt = checkpoint.latest(self.out) if self.resume else None
        if self.resume and ckpt is None and env.main:
            print(f"audioflamingo: no checkpoint under {checkpoint.checkpoint_dir(self.out)}; starting fresh")
        if ckpt is not None:
            state = checkpoint.read_state(ckpt)
            start_stage = state["stage_index"]
        global_step = state["global_step"] if state else 0
        if env.main:
            self.out.mkdir(parents=True, exist_ok=True)
            # Steps after the checkpoint run again: their old rows would be duplicates.
            metrics_log.trim(self.out / "metrics.jsonl", global_step)
        self.skipped = state.get("skipped", 0) if state else 0
        if tr.activation_checkpointing:
            sharding.enable_activation_checkpointing(model)
        root = None
        if self.sharded:
            if ckpt is not None:  # whole weights in before sharding; each rank then keeps its shards
                checkpoint.load_weights(ckpt, model)
            root = sharding.shard(TrainStep(model), model, env.device, tr.bf16 and env.device.type == "cuda")
            model.encoder.to(env.device)  # replicated, outside the shards
        for si in range(start_stage, len(rc.stages)):
            stage = rc.stages[si]
            set_trainable(model, stage.kind, stage.train_encoder)
            if stage.max_windows:
                model.config.window.max_windows = stage.max_windows
            opt, sched = make_optimizer(model, stage, tr)
            data = StageData(stage, tok, rc, si)
            step = 0
            if state is not None and si == start_stage:
                if root is not None:
                    checkpoint.load_sharded_state(ckpt, model, opt, sched)
                else:
                    checkpoint.load_into(ckpt, model, opt, sched)
                data.sampler.load_state_dict(state["sampler"])
                step = state["stage_step"]
            wrapped = root if root is not None else TrainStep(model)
            if root is None and env.world > 1:
                wrapped = nn.parallel.DistributedDataParallel(
                    wrapped, find_unused_parameters=True, device_ids=[env.device] if env.device.type == "cuda" else None
                )
            global_step = self._run_stage(si, stage, step, global_step, model, tok, wrapped, opt, sched, data)
            state = None
            self._save_model(model, self.out / f"stage-{stage.name}", tok)
        self._save_model(model, self.out / "final", tok)
        if env.world > 1:
            dist.barrier()
        return self.out / "final"

    def _run_stage(self, si, stage, step, global_step, model, tok, wrapped, opt, sched, data):
        from audioflamingo.progress import progress_bar

        env, tr = self.env, self.recipe.train
        micro, accum, world = tr.micro_batch_size, tr.grad_accum, env.world
        params = [p for p in model.parameters() if p.requires_grad]
        bar = progress_bar(
            stage.steps, f"{stage.name}", "step", enabled=bool(self.progress), initial=step, dynamic_ncols=True
        )
        sharded = sharding.is_sharded(wrapped)
        autocast: AbstractContextManager = nullcontext()  # under FSDP its mixed-precision policy casts instead
        if env.device.type == "cuda" and tr.bf16 and not sharded:
            autocast = torch.autocast("cuda", dtype=torch.bfloat16)
        elif env.device.type == "cpu" and tr.cpu_bf16 and not sharded:
            autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        replicated = [p for p in model.encoder.parameters() if p.requires_grad] if sharded else []
        model.train()
        while step < stage.steps:
            t0 = time.perf_counter()
            items = data.sampler.take(micro * accum * world)
            micros = []
            for m in range(accum):
                lo = (m * world + env.rank) * micro
                micros.append(self._prepare(model, data, items[lo : lo + micro], tok))
            local_tokens = sum(sum(1 for x in r[1][1:] if x != IGNORE) for rows in micros for r in rows)
            n_tokens = env.sum(float(local_tokens))
            loss_sum = 0.0
            if n_tokens > 0:
                for m, rows in enumerate(micros):
                    sync = (m == accum - 1) or world == 1
                    ctx = nullcontext() if sync or not hasattr(wrapped, "no_sync") else wrapped.no_sync()
                    if sharded:
                        wrapped.set_requires_gradient_sync(sync)
                    if not rows and world > 1:
                        # Every clip of this share was unreadable, but the other ranks' forward and
                        # backward run collectives (DDP's gradient buckets, FSDP's gathers): join in
                        # with a stand-in row that has no targets (loss and gradients 0).
                        rows = self._stand_in(model, data)
                    if rows:
                        with ctx:
                            with autocast:
                                ls = wrapped(*self._tensors(model, rows))
                            (ls * (world / n_tokens)).backward()
                            loss_sum += float(ls.detach())
            if replicated and world > 1:
                sharding.sync_replicated_grads(replicated)
            loss = env.sum(loss_sum) / max(n_tokens, 1.0)
            if not math.isfinite(loss):
                last = checkpoint.latest(self.out)
                raise TrainingDiverged(
                    f"loss became {loss} at step {global_step + 1} (stage {stage.name}); stopped. "
                    f"Last good checkpoint: {last if last else 'none'}"
                )
            if not tr.clip_grad:
                grad_norm = None
            elif sharded:
                grad_norm = sharding.clip_grad_norm(params, tr.clip_grad)
            else:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, tr.clip_grad))
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            step += 1
            global_step += 1
            dt = time.perf_counter() - t0
            samples = env.sum(float(sum(len(r) for r in micros)))
            memory = env.each(sharding.peak_memory_mb(env.device))
            rec = {
                "step": global_step,
                "stage": stage.name,
                "stage_step": step,
                "loss": loss,
                "lr": sched.get_last_lr()[0],
                "grad_norm": grad_norm,
                "tokens": n_tokens,
                "tokens_per_s": n_tokens / dt,
                "samples_per_s": samples / dt,
                "skipped_clips": int(env.sum(float(self.skipped))),
                "peak_rss_mb": _peak_rss_mb(),
                "time": time.time(),
            }
            if env.device.type == "cuda":
                rec["peak_cuda_mb"] = memory[0]
                rec["peak_cuda_mb_per_rank"] = memory
            else:
                rec["peak_rss_mb_per_rank"] = memory
            self._log(rec)
            bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{n_tokens / dt:.0f}")
            bar.update(1)
            if data.val and tr.eval_every and (step % tr.eval_every == 0 or step == stage.steps):
                val = self.evaluate(model, tok, data, wrapped if sharded else None)
                self._log({"step": global_step, "stage": stage.name, "val_loss": val})
            if tr.save_every and (step % tr.save_every == 0 or step == stage.steps):
                self._save(si, step, global_step, model, tok, opt, sched, data, sharded)
        bar.close()
        model.eval()
        return global_step

    def _stand_in(self, model, data: StageData):
        """One row with no targets (and a silent clip in audio stages): its loss and gradients are 0."""
        clips = []
        if not data.text_only:
            import numpy as np

            clips = model.encode_clips([np.zeros(model.config.window.window_samples, dtype=np.float32)])
        return [([model.special.audio, model.special.pad], [IGNORE, IGNORE], clips)]

    @torch.no_grad()
    def evaluate(self, model, tok, data: StageData, root=None) -> float:
        """Mean validation loss per target token; `root`: the sharded step, run by every rank alike."""
        env, tr = self.env, self.recipe.train
        model.eval()
        n = min(len(data.val), tr.eval_batches * tr.micro_batch_size * env.world)
        mine = list(range(env.rank, n, env.world))
        total = tokens = 0.0
        batches = math.ceil(math.ceil(n / env.world) / tr.micro_batch_size)
        for s in range(0, batches * tr.micro_batch_size, tr.micro_batch_size):
            rows = []
            for i in mine[s : s + tr.micro_batch_size]:
                ids, labels, refs = (
                    text_sample(data.val[i], tok, tr.max_tokens)
                    if data.text_only
                    else tokenized_with_budget(data.val[i], tok, [], tr.max_tokens, tr.lowercase)
                )
                try:
                    rows.append((ids, labels, [self._clip_features(model, r) for r in refs]))
                except AudioFlamingoError:
                    continue
            if root is not None and not rows:
                rows = self._stand_in(model, data)
            if rows:
                ids, mask, labels, clips = self._tensors(model, rows)
                total += float((root or TrainStep(model))(ids, mask, labels, clips))
                tokens += float((labels[:, 1:] != IGNORE).sum())
        model.train()
        return env.sum(total) / max(env.sum(tokens), 1.0)

    def _save_model(self, model, directory: Path, tok) -> None:
        """A model directory; under FSDP every rank gathers and rank 0 writes."""
        if self.sharded:
            full = sharding.full_model_state(model)
            if self.env.main:
                checkpoint.save_model(model, directory, tok, full)
            return
        if self.env.main:
            model.save_pretrained(directory, tok)

    def _save(self, si, step, global_step, model, tok, opt, sched, data, sharded=False):
        full_model = full_optim = None
        if sharded:  # collectives: every rank gathers, rank 0 receives
            full_model = sharding.full_model_state(model)
            full_optim = sharding.full_optimizer_state(model, opt)
        if self.env.main:
            checkpoint.save(
                self.out,
                global_step,
                model,
                tok,
                opt,
                sched,
                {
                    "stage_index": si,
                    "stage_step": step,
                    "global_step": global_step,
                    "sampler": data.sampler.state_dict(),
                    "skipped": self.skipped,
                },
                self.recipe.train.keep_last,
                model_state=full_model,
                optimizer_state=full_optim,
            )
        if self.env.world > 1:
            dist.barrier()

    def _log(self, rec: dict) -> None:
        if not self.env.main:
            return
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(rec) + "\n")
        if getattr(self, "_tb", None) is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tensorboard"))
            except Exception:
                self._tb = False
        if self._tb:
            for k in ("loss", "val_loss", "lr", "tokens_per_s"):
                if rec.get(k) is not None:
                    self._tb.add_scalar(f"train/{k}", rec[k], rec["step"])


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def dry_run(recipe: Recipe) -> str:
    """The resolved stages, trainable parameter counts and data sizes, without training."""
    t = Trainer(recipe, progress=False)
    model, tok = t.build_model()
    tr = recipe.train
    lines = [
        f"recipe: {recipe.path}",
        f"output: {recipe.output_dir}",
        f"seed: {recipe.seed}",
        f"global batch: {tr.micro_batch_size} x {tr.grad_accum} accum x {t.env.world} process(es) = "
        f"{tr.micro_batch_size * tr.grad_accum * t.env.world} samples; max {tr.max_tokens} tokens per sample",
        f"parallel: {tr.parallel}"
        + (", activation checkpointing" if tr.activation_checkpointing else "")
        + (", bf16 on GPU" if tr.bf16 else "")
        + (", bf16 autocast on CPU" if tr.cpu_bf16 else ""),
    ]
    for si, st in enumerate(recipe.stages):
        set_trainable(model, st.kind, st.train_encoder)
        c = count(model)
        data = StageData(st, tok, recipe, si)
        lines.append(
            f"stage {si + 1} {st.name!r} ({st.kind}): {st.steps} steps, lr {st.lr:g}, "
            f"{st.schedule} after {st.warmup_steps} warm-up, windows per clip "
            f"{st.max_windows or model.config.window.max_windows}"
        )
        lines.append(f"  trainable {c['trainable']:,} of {c['total']:,} parameters")
        for d, recs in zip(st.datasets, data.records):
            shots = f", {d.icl_shots}-shot ICL" if d.icl_shots else ""
            lines.append(f"  {d.manifest}: {len(recs)} records, weight {d.weight:g}{shots}")
        lines.append(
            f"  virtual epoch {data.sampler.epoch_size} samples; "
            f"{st.steps * tr.micro_batch_size * tr.grad_accum * t.env.world} samples this stage; "
            f"validation: {len(data.val)} records"
        )
    return "\n".join(lines)
