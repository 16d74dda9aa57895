"""Training recipes (YAML): the model to start from, shared settings, and the stages to run.

model: {init: tiny}                    # a preset name, or a model directory to continue from
                                       # (+ positions: rotary+sinusoidal to add absolute time)
output_dir: runs/tiny                  # relative paths are relative to the recipe file
seed: 0
train: {micro_batch_size: 8, grad_accum: 1, max_tokens: 512, save_every: 100, keep_last: 3}
                                       # save_every: 0 writes no checkpoints (no --resume);
                                       # keep_last >= 1: the newest checkpoint always stays
                                       # parallel: fsdp shards the model over processes
                                       # (+ activation_checkpointing: true; docs/TRAINING.md)
stages:
  - name: pretrain
    kind: pretrain                     # lm (text only, LM alone) | pretrain | sft | chat
    steps: 200
    lr: 1.0e-4
    max_windows: 3                     # AF2 curriculum: windows per clip in this stage
    train_encoder: true                # the LM loss reaches the audio encoder too (not in lm)
    encoder_lr: 1.0e-5                 # its learning rate (default: the stage's), no weight decay
    transformation_lr: 1.0e-5          # the transformation layers' (default: the stage's; 0: frozen)
    epoch_size: 1000                   # virtual epoch (samples) of the mixture
    datasets:
      - {manifest: data/caps.jsonl, weight: 2.0}
      - {manifest: data/aqa.jsonl, weight: 1.0, icl_shots: 4}   # kNN-interleaved (data build-icl)
      - {manifest: data/esc.jsonl, task_description: "The task is event classification."}
    val: [data/val.jsonl]
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from audioflamingo.train.recipe_check import RecipeError, check_files, check_schema, read_yaml

STAGE_KINDS = ("lm", "pretrain", "sft", "chat")


@dataclass
class DatasetSpec:
    manifest: str
    weight: float = 1.0
    icl_shots: int = 0  # > 0: interleave this many retrieved neighbours (needs <manifest>.icl.jsonl)
    icl_file: str | None = None
    task_description: str | None = None  # replaces the task's default description for this dataset
    instruction: str | None = None  # used where a record has no instruction of its own
    # Keep only records whose `question` (the kind of question; the synth corpus writes it) is one of
    # these: a manifest's rarer kinds can get a larger share without a second manifest file.
    questions: list[str] | None = None
    # Keep only records whose answer (`output`) is one of these: with one entry per class, a recipe
    # balances a question whose classes the corpus does not (male/female: 178 male, 300 female).
    answers: list[str] | None = None


@dataclass
class StageSpec:
    name: str
    kind: str
    steps: int
    datasets: list[DatasetSpec]
    lr: float = 1e-4
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.0
    epoch_size: int | None = None
    max_windows: int | None = None
    train_encoder: bool | None = None  # None: as the model config's encoder.frozen says
    encoder_lr: float | None = None
    # The transformation layers' learning rate (None: the stage's; 0: frozen in this stage). Under a
    # frozen base LM that does not know the corpus' style yet, the stage's rate let them turn the
    # audio into one constant vector (a learnt prompt) within 300 steps (docs/TRAINING.md).
    transformation_lr: float | None = None
    val: list[str] = field(default_factory=list)


@dataclass
class TrainSpec:
    micro_batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float = 1.0
    max_tokens: int = 512
    lowercase: bool = False
    save_every: int = 100
    keep_last: int = 3
    eval_every: int = 100
    eval_batches: int = 8
    log_every: int = 1
    bf16: bool = True  # GPU only: autocast under ddp, FSDP's bf16 params / fp32 reductions under fsdp
    # CPU bf16 autocast (ddp only; weights and optimizer stay fp32). Off by default: it is fast only on
    # CPUs with bf16 instructions (avx512_bf16, AMX), 1.9x per step for the v2 model on the EPYC of
    # docs/TRAINING.md, and emulated (slow) elsewhere.
    cpu_bf16: bool = False
    parallel: str = "ddp"  # ddp: a replica per process | fsdp: parameters, gradients, optimizer sharded
    activation_checkpointing: bool = False  # recompute decoder layers and xattn blocks in backward


@dataclass
class Recipe:
    model: dict[str, Any]
    output_dir: str
    stages: list[StageSpec]
    train: TrainSpec = field(default_factory=TrainSpec)
    seed: int = 0
    path: str = ""


def _build(cls, d: dict, where: str):
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    return cls(**d)


def load_recipe(path: str | Path) -> Recipe:
    """Parse and check a recipe (recipe.schema.json, unique stage names, the files it names) before
    anything is built or written; the first problem raises a one-line RecipeError."""
    p = Path(path)
    raw = check_schema(read_yaml(p), p)
    base = p.parent

    def rel(x: str) -> str:
        return str(x if Path(x).is_absolute() else (base / x))

    stages = []
    for n, s in enumerate(raw.pop("stages")):
        s = dict(s)
        ds = [_build(DatasetSpec, dict(d), f"{p}: stages[{n}].datasets") for d in s.pop("datasets")]
        for d in ds:
            d.manifest = rel(d.manifest)
            d.icl_file = rel(d.icl_file) if d.icl_file else None
        stage = _build(StageSpec, {**s, "datasets": ds}, f"{p}: stages[{n}]")
        stage.val = [rel(v) for v in (stage.val if isinstance(stage.val, list) else [stage.val])]
        for key in ("lr", "min_lr_ratio", "encoder_lr", "transformation_lr"):
            if getattr(stage, key) is not None:
                setattr(stage, key, float(getattr(stage, key)))
        stages.append(stage)
    train = _build(TrainSpec, raw.pop("train", {}) or {}, f"{p}: train")
    model = dict(raw.pop("model", {"init": "tiny"}))
    for key in ("lm", "clap", "afclap", "tokenizer"):
        if model.get(key):
            model[key] = rel(model[key])
    if "init" in model and Path(base / str(model["init"])).exists():
        model["init"] = rel(model["init"])
    out = rel(raw.pop("output_dir", "runs/" + p.stem))
    r = _build(Recipe, {**raw, "model": model, "output_dir": out, "stages": stages, "train": train}, str(p))
    r.path = str(p)
    check_files(r)
    return r
