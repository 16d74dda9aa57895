"""`audioflamingo clap train|zero-shot|search|import`."""
from __future__ import annotations

import json
import os
import sys


def add_clap_commands(sub) -> None:
    p = sub.add_parser("clap", help="AF-CLAP audio-text model: train, zero-shot classify, search, import",
                       description="audioflamingo clap train RECIPE.yaml [--resume] [--nproc N]\n"
                                   "audioflamingo clap zero-shot FILE... --labels a,b,c --model DIR\n"
                                   "audioflamingo clap search --model DIR --text 'a dog barks' --index DIR -k 5\n"
                                   "audioflamingo clap search --model DIR --audio FILE --texts 'a,b,c'\n"
                                   "audioflamingo clap import HF_CLAP_DIR --out DIR",
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["train", "zero-shot", "search", "import"])
    p.add_argument("paths", nargs="*", help="recipe (train), audio files (zero-shot), HF ClapModel dir (import)")
    p.add_argument("--model", metavar="DIR", help="an AF-CLAP directory (clap train output, or clap import)")
    p.add_argument("--labels", help="(zero-shot) comma-separated labels")
    p.add_argument("--template", default="{}", help="(zero-shot) text template, e.g. 'the sound of {}'")
    p.add_argument("--text", help="(search) text query against --index (text -> audio)")
    p.add_argument("--index", metavar="DIR", help="(search) datastore built with this CLAP model")
    p.add_argument("--audio", metavar="FILE", help="(search) audio query against --texts (audio -> text)")
    p.add_argument("--texts", help="(search) comma-separated candidate texts")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--out", metavar="DIR", help="(import) where to write the AF-CLAP directory")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--nproc", type=int, default=1)


def run_clap_command(args) -> int:
    from audioflamingo.audio.io import load_audio
    from audioflamingo.clap.model import AFClap

    if args.action == "train":
        if len(args.paths) != 1:
            raise ValueError("clap train needs one RECIPE.yaml")
        if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
            import subprocess

            return subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    f"--nproc_per_node={args.nproc}", "-m", "audioflamingo", "clap", "train",
                                    args.paths[0]] + ["--resume"] * args.resume)
        from audioflamingo.clap.train import train_clap

        final = train_clap(args.paths[0], resume=args.resume, progress=sys.stderr.isatty())
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"done: {final}")
        return 0
    if args.action == "import":
        if len(args.paths) != 1 or not args.out:
            raise ValueError("clap import needs HF_CLAP_DIR and --out DIR")
        AFClap.from_hf_clap(args.paths[0]).save_pretrained(args.out)
        print(f"wrote {args.out}")
        return 0
    if not args.model:
        raise ValueError(f"clap {args.action} needs --model DIR")
    model = AFClap.from_pretrained(args.model)
    sr = model.cfg.window.sample_rate
    if args.action == "zero-shot":
        from audioflamingo.clap.train import zero_shot

        labels = [l.strip() for l in (args.labels or "").split(",") if l.strip()]
        if len(labels) < 2 or not args.paths:
            raise ValueError("clap zero-shot needs audio files and at least two --labels")
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
            raise ValueError("text search needs --index DIR (a datastore built with --model this CLAP)")
        name = ClipEmbedder.from_directory(args.model).name
        with torch.no_grad():
            q = model.embed_texts([args.text])[0].numpy()
        store = Datastore.open(args.index, name, int(q.shape[0]))
        for h in store.nearest(q, args.k):
            print(json.dumps({"id": h.record.id, "distance": round(h.distance, 6), "audio": str(h.record.audio),
                              "output": h.record.output}, ensure_ascii=False))
        return 0
    if args.audio and args.texts:
        texts = [t.strip() for t in args.texts.split(",") if t.strip()]
        with torch.no_grad():
            a = model.embed_waves([load_audio(args.audio, sr)])
            sims = (a @ model.embed_texts(texts).t())[0].tolist()
        for t, s in sorted(zip(texts, sims), key=lambda x: -x[1])[: args.k]:
            print(json.dumps({"text": t, "similarity": round(s, 6)}))
        return 0
    raise ValueError("clap search needs --text with --index, or --audio with --texts")
