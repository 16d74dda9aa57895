"""`audioflamingo clap train|zero-shot|search|import`."""

from __future__ import annotations

import json
import os
import sys


def add_clap_commands(sub) -> None:
    p = sub.add_parser(
        "clap",
        help="AF-CLAP audio-text model: train, zero-shot classify, search, import",
        description="AF-CLAP, the audio-text contrastive model whose audio tower the default model "
        "uses: train it, classify with it zero-shot, search with it, or import one.",
    )
    act = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = act.add_parser("train", help="train AF-CLAP from a recipe")
    t.add_argument("paths", nargs=1, metavar="RECIPE", help="recipe YAML (see recipes/clap-toy.yaml)")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    t.add_argument("--nproc", type=int, default=1, help="processes (torch.distributed) on this machine")
    z = act.add_parser("zero-shot", help="rank labels for audio files by audio-text similarity")
    z.add_argument("paths", nargs="+", metavar="FILE", help="audio files")
    z.add_argument("--labels", required=True, help="comma-separated labels, at least two")
    z.add_argument("--template", default="{}", help="text template, e.g. 'the sound of {}'")
    q = act.add_parser("search", help="text -> audio (with --index) or audio -> text (with --texts)")
    q.add_argument("--text", help="text query against --index")
    q.add_argument("--index", metavar="DIR", help="datastore built with this CLAP model")
    q.add_argument("--audio", metavar="FILE", help="audio query against --texts")
    q.add_argument("--texts", help="comma-separated candidate texts")
    q.add_argument("-k", type=int, default=5, help="results to print")
    for x in (z, q):
        x.add_argument(
            "--model", metavar="DIR", required=True, help="an AF-CLAP directory (clap train output, or clap import)"
        )
    i = act.add_parser("import", help="convert a Hugging Face ClapModel directory to AF-CLAP")
    i.add_argument("paths", nargs=1, metavar="HF_CLAP_DIR", help="a transformers ClapModel directory")
    i.add_argument("--out", metavar="DIR", required=True, help="where to write the AF-CLAP directory")


def run_clap_command(args) -> int:
    from audioflamingo.errors import UsageError
    from audioflamingo.audio.io import load_audio
    from audioflamingo.clap.model import AFClap

    if args.action == "train":
        if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
            import subprocess

            return subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    f"--nproc_per_node={args.nproc}",
                    "-m",
                    "audioflamingo",
                    "clap",
                    "train",
                    args.paths[0],
                ]
                + ["--resume"] * args.resume
            )
        from audioflamingo.clap.train import train_clap

        final = train_clap(args.paths[0], resume=args.resume, progress=True)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"done: {final}")
        return 0
    if args.action == "import":
        AFClap.from_hf_clap(args.paths[0]).save_pretrained(args.out)
        print(f"wrote {args.out}")
        return 0
    model = AFClap.from_pretrained(args.model)
    sr = model.cfg.window.sample_rate
    if args.action == "zero-shot":
        from audioflamingo.clap.train import zero_shot

        labels = [l.strip() for l in (args.labels or "").split(",") if l.strip()]
        if len(labels) < 2:
            raise UsageError("clap zero-shot needs at least two --labels")
        waves = [load_audio(f, sr) for f in args.paths]
        probs = zero_shot(model, waves, labels, args.template)
        for f, p in zip(args.paths, probs.tolist()):
            ranked = sorted(zip(labels, p), key=lambda x: -x[1])
            print(json.dumps({"file": f, "label": ranked[0][0], "probs": dict(ranked)}))
        return 0
    import torch

    if args.text:
        from audioflamingo.retrieval.datastore import Datastore
        from audioflamingo.retrieval.embed import ClipEmbedder

        if not args.index:
            raise UsageError("text search needs --index DIR (a datastore built with --model this CLAP)")
        name = ClipEmbedder.from_directory(args.model).name
        with torch.no_grad():
            q = model.embed_texts([args.text])[0].numpy()
        store = Datastore.open(args.index, name, int(q.shape[0]))
        for h in store.nearest(q, args.k):
            print(
                json.dumps(
                    {
                        "id": h.record.id,
                        "distance": round(h.distance, 6),
                        "audio": str(h.record.audio),
                        "output": h.record.output,
                    },
                    ensure_ascii=False,
                )
            )
        return 0
    if args.audio and args.texts:
        texts = [t.strip() for t in args.texts.split(",") if t.strip()]
        with torch.no_grad():
            a = model.embed_waves([load_audio(args.audio, sr)])
            sims = (a @ model.embed_texts(texts).t())[0].tolist()
        for t, s in sorted(zip(texts, sims), key=lambda x: -x[1])[: args.k]:
            print(json.dumps({"text": t, "similarity": round(s, 6)}))
        return 0
    raise UsageError("clap search needs --text with --index, or --audio with --texts")
