"""`audioflamingo data ...` and `audioflamingo train ...`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from audioflamingo.errors import UsageError

CONVERTERS = ("clotho", "audiocaps", "clothoaqa", "esc50", "urbansound8k")


def add_train_commands(sub) -> None:
    d = sub.add_parser("data", help="manifests: validate, convert public datasets, build kNN ICL neighbours")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = dsub.add_parser("validate", help="report every problem of a manifest at once (file:line)")
    p.add_argument("manifest")
    p.add_argument("--no-audio", action="store_true", help="check fields only, not the audio files")
    p.add_argument(
        "--root",
        metavar="DIR",
        help="audio must resolve inside DIR (default: the manifest's folder; "
        "paths that leave it, by ../, a symlink or an absolute path, are "
        "problems)",
    )

    p = dsub.add_parser(
        "convert",
        help="public dataset layout -> manifest",
        description="Layouts: clotho (clotho_captions_<split>.csv + audio folder), audiocaps "
        "(<split>.csv + audio folder), clothoaqa (clotho_aqa_<split>.csv + audio folder), "
        "esc50 (root with meta/esc50.csv, audio/), urbansound8k (root with "
        "metadata/UrbanSound8K.csv, audio/fold<k>/).",
    )
    p.add_argument("layout", choices=CONVERTERS)
    p.add_argument("--csv", help="metadata CSV (clotho, audiocaps, clothoaqa)")
    p.add_argument("--audio-dir", help="folder with the audio files (clotho, audiocaps, clothoaqa)")
    p.add_argument("--root", help="dataset root (esc50, urbansound8k)")
    p.add_argument("--folds", help="comma-separated folds to keep (esc50, urbansound8k)")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")

    p = dsub.add_parser("build-icl", help="embed every clip, store each sample's k nearest neighbours")
    p.add_argument("manifest")
    p.add_argument("--k", type=int, default=8)
    p.add_argument(
        "--encoder",
        metavar="DIR",
        help="an audioflamingo model directory or a Hugging Face CLAP directory "
        "(default: the bundled default model's encoder)",
    )
    p.add_argument("--cache", metavar="DIR", help="embedding cache (default: .af-embeddings beside the manifest)")
    p.add_argument("--out", help="neighbour file (default: <manifest>.icl.jsonl)")

    p = dsub.add_parser(
        "build-episodes",
        help="label-renamed classification ICL episodes (teach reading labels "
        "from the examples; needs build-icl first)",
        description="Each classification record becomes episodes whose examples are its kNN "
        "neighbours (nearest last) and whose labels are renamed to fresh pseudo-words, "
        "so the answer can only be read from the examples. Records whose label is not "
        "among their neighbours are skipped. Example: audioflamingo data build-icl "
        "data/synth/train_classify.jsonl && audioflamingo data build-episodes "
        "data/synth/train_classify.jsonl --copies 4 --out data/synth/train_episodes4.jsonl",
    )
    p.add_argument(
        "manifest", help="classification manifest (.jsonl) with a <manifest>.icl.jsonl beside it (or --icl-file)"
    )
    p.add_argument("--out", required=True, help="episode manifest to write (.jsonl)")
    p.add_argument("--shots", type=int, default=4, help="examples per episode (default 4)")
    p.add_argument("--copies", type=int, default=2, help="episodes per record, each with fresh names (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pseudo-word names")
    p.add_argument(
        "--icl-file",
        metavar="FILE",
        help="neighbour file to take the examples from (default: <manifest>.icl.jsonl; e.g. the "
        "v2 encoder's <manifest>.v2.icl.jsonl)",
    )

    p = dsub.add_parser(
        "build-drills",
        help="copy drills: text records that repeat a random sequence (teach copying from context in a kind: lm stage)",
        description='Writes task-`text` records like "kadafu melody qooyhv | kadafu melody qooyhv": '
        "only the repeats are predictable, so an lm stage on them learns to copy from "
        "earlier in the context, which few-shot use of new labels needs. Example: "
        "audioflamingo data build-drills data/synth/train_caption.jsonl --count 20000 "
        "--out data/synth/train_drills.jsonl",
    )
    p.add_argument("manifests", nargs="*", help="manifests whose words join the random sequences (optional)")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument("--count", type=int, default=20000, help="records to write (default 20000)")
    p.add_argument("--seed", type=int, default=0)

    p = dsub.add_parser(
        "synth",
        help="generate the default model's corpus (sampled and recorded instruments, synthetic and "
        "recorded voices, recorded sounds, procedural signals) with exact captions, QA, dialogues",
        description="Needs the Debian packages of every source (`make synth-deps`; a missing one is "
        "named). The same seed gives the same corpus. Splits are disjoint by source recording; "
        "whole sources are held out into OUT/heldout/eval. "
        "Example: audioflamingo data synth --out data/synth --hours 3",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hours", type=float, default=3.0, help="hours of training audio (default 3)")
    p.add_argument("--test-scenes", type=int, default=300)
    p.add_argument("--val-scenes", type=int, default=100)

    p = dsub.add_parser(
        "synth-voices",
        help="extra training voices for male/female: every gendered espeak-ng variant the corpus does not "
        "use (held-out ones excluded), mixed into training scenes",
        description="Training scenes only (the corpus' test sentences are never spoken), with every question "
        "of each timeline in OUT/train_aqa_all.jsonl; a recipe picks the kinds it wants (`questions: "
        "[gender]`). Example: audioflamingo data synth-voices --out data/synth-voices",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenes", type=int, default=800, help="training clips to mix (default 800)")
    p.add_argument("--per-voice", type=int, default=3, help="sentences per variant and language (default 3)")
    p.add_argument(
        "--recorded",
        action="store_true",
        help="add 0 A.D.'s recorded male and female voice lines (Debian 0ad-data: `make synth-voices-deps`)",
    )

    p = dsub.add_parser(
        "train-tokenizer", help="byte-level BPE on the text of manifests (for a model trained from scratch)"
    )
    p.add_argument("manifests", nargs="+")
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--out", required=True, help="tokenizer folder to write (Hugging Face format)")

    t = sub.add_parser(
        "train",
        help="run a training recipe (YAML): stages, checkpoints, resume",
        description="Single process: `audioflamingo train R.yaml`. Several processes (CPU gloo or "
        "GPUs): `audioflamingo train R.yaml --nproc N` (runs torchrun), or "
        "`torchrun --nproc_per_node N -m audioflamingo train R.yaml`. Sharded (FSDP2): "
        "`train: {parallel: fsdp}` in the recipe. Several machines: torchrun --nnodes M --nproc-per-node N "
        "--rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id ID -m audioflamingo train R.yaml on each "
        "(docs/TRAINING.md).",
    )
    t.add_argument("recipe")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of the run")
    t.add_argument("--dry-run", action="store_true", help="print stages, trainable parameters and data sizes")
    t.add_argument("--nproc", type=int, default=1, help="processes on this machine (default 1)")
    t.add_argument("--no-progress", action="store_true")

    a = sub.add_parser(
        "average",
        help="element-wise mean of models fine-tuned from one start (a model soup)",
        description="Writes a model directory whose every weight is the (weighted) mean of the "
        "given models' weights. The models must share config, tokenizer and tensor "
        "shapes: checkpoints or stages of one run, or runs from one initialisation. "
        "Two stages that trade skills (e.g. few-shot use vs dialogue) often average to "
        "a model keeping most of both; measure it with `audioflamingo eval`.",
        epilog="example: audioflamingo average runs/default-icl/stage-chat runs/default-icl/final "
        "--out runs/default-icl/soup",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("models", nargs="+", metavar="DIR", help="two or more model directories")
    a.add_argument("--out", required=True, metavar="DIR", help="model directory to write (must not exist)")
    a.add_argument("--weights", help="comma-separated weights, one per model (default: equal); normalised to sum 1")


def run_train_commands(args) -> int:
    if args.command == "train":
        return _train(args)
    if args.command == "average":
        from audioflamingo.train.average import average_models

        try:
            weights = [float(w) for w in args.weights.split(",")] if args.weights else None
        except ValueError:
            raise UsageError(f"--weights: {args.weights!r} is not a comma-separated list of numbers") from None
        if len(args.models) < 2:
            raise UsageError("average needs at least two model directories")
        if weights is not None and len(weights) != len(args.models):
            raise UsageError(f"--weights: {len(weights)} weight(s) for {len(args.models)} models")
        print(json.dumps(average_models(args.models, args.out, weights)))
        return 0
    if args.data_command == "build-drills":
        from audioflamingo.data.icl import build_copy_drills, manifest_words

        print(json.dumps(build_copy_drills(args.out, args.count, args.seed, manifest_words(args.manifests))))
        return 0
    if args.data_command == "build-episodes":
        from audioflamingo.data.icl import build_renamed_episodes

        print(
            json.dumps(
                build_renamed_episodes(args.manifest, args.out, args.shots, args.copies, args.seed, args.icl_file)
            )
        )
        return 0
    if args.data_command == "synth":
        from audioflamingo.data.synth import synthesize

        s = synthesize(args.out, args.seed, args.hours, args.test_scenes, args.val_scenes, progress=sys.stderr.isatty())
        print(json.dumps({k: v for k, v in s.items() if k != "recording_splits"}, indent=1))
        return 0
    if args.data_command == "synth-voices":
        from audioflamingo.data.synth.sources import check_tools
        from audioflamingo.data.synth.voices import synthesize_voices

        check_tools(["espeak-ng", "gcompris", "freedesktop"])
        s = synthesize_voices(
            args.out, args.scenes, args.per_voice, args.seed, progress=sys.stderr.isatty(), recorded=args.recorded
        )
        print(json.dumps(s, indent=1))
        return 0
    if args.data_command == "train-tokenizer":
        from audioflamingo.text.bpe import manifest_texts, train_bpe

        tok = train_bpe(manifest_texts(args.manifests), args.vocab_size)
        tok.save_pretrained(args.out)
        print(f"{args.out}: {len(tok)} tokens")
        return 0
    if args.data_command == "validate":
        from audioflamingo.data.manifest import validate_manifest

        rep = validate_manifest(
            args.manifest, check_audio=not args.no_audio, progress=sys.stderr.isatty(), root=args.root
        )
        for line in rep.problems:
            print(line)
        tasks = ", ".join(f"{k} {v}" for k, v in sorted(rep.tasks.items())) or "none"
        print(f"{rep.path}: {rep.records} records ({tasks}); {len(rep.problems)} problem(s)", file=sys.stderr)
        return 0 if rep.ok else 1
    if args.data_command == "convert":
        return _convert(args)
    if args.data_command == "build-icl":
        from audioflamingo.data.icl import build_icl
        from audioflamingo.retrieval.embed import ClipEmbedder

        from audioflamingo.tasks import default_model_dir

        encoder = args.encoder or default_model_dir()
        summary = build_icl(
            args.manifest,
            ClipEmbedder.from_directory(encoder),
            k=args.k,
            cache_dir=args.cache,
            out=args.out,
            progress=True,
        )
        print(json.dumps(summary))
        return 0
    return 2


def _convert(args) -> int:
    from audioflamingo.data import converters as C
    from audioflamingo.data.manifest import write_manifest

    out = Path(args.out)
    out_dir = out.parent.resolve()
    folds = set(args.folds.split(",")) if args.folds else None
    if args.layout in ("clotho", "audiocaps", "clothoaqa"):
        if not args.csv or not args.audio_dir:
            raise UsageError(f"{args.layout} needs --csv and --audio-dir")
        fn = {"clotho": C.clotho, "audiocaps": C.audiocaps, "clothoaqa": C.clotho_aqa}[args.layout]
        res = fn(Path(args.csv), Path(args.audio_dir), out_dir)
    else:
        if not args.root:
            raise UsageError(f"{args.layout} needs --root")
        fn = C.esc50 if args.layout == "esc50" else C.urbansound8k
        res = fn(Path(args.root), out_dir, folds)
    if not res.records:
        raise ValueError(
            f"no usable rows: all {len(res.missing_audio)} audio files are missing (first: {res.missing_audio[:1]})"
        )
    write_manifest(res.records, out)
    for m in res.missing_audio[:20]:
        print(f"missing audio: {m}", file=sys.stderr)
    print(
        f"{out}: {len(res.records)} records; {len(res.missing_audio)} rows skipped for missing audio", file=sys.stderr
    )
    return 0


def _train(args) -> int:
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        import subprocess

        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={args.nproc}",
            "-m",
            "audioflamingo",
            "train",
            args.recipe,
        ]
        cmd += ["--resume"] * args.resume + ["--dry-run"] * args.dry_run + ["--no-progress"] * args.no_progress
        return subprocess.call(cmd)
    from audioflamingo.train.recipe import load_recipe
    from audioflamingo.train.trainer import Trainer, dry_run

    recipe = load_recipe(args.recipe)
    if args.dry_run:
        print(dry_run(recipe))
        return 0
    final = Trainer(recipe, resume=args.resume, progress=not args.no_progress).run()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {final}")
    return 0
