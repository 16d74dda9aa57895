"""`audioflamingo index build|add|query` and `audioflamingo embed`."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_index_commands(sub) -> None:
    p = sub.add_parser(
        "index",
        help="datastore of labelled examples for retrieval (build, add, query)",
        description="A datastore of labelled examples (a manifest's clips embedded by a model's "
        "audio encoder) that --rag retrieves in-context shots from.",
    )
    act = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = act.add_parser("build", help="embed a manifest's clips into a new datastore folder")
    b.add_argument("source", metavar="MANIFEST", help="labelled examples (JSON lines)")
    b.add_argument("--out", metavar="DIR", required=True, help="datastore folder to create")
    b.add_argument(
        "--kind",
        choices=["exact", "hnsw", "ivf"],
        default="exact",
        help="exact (IndexFlatL2), hnsw or ivf (approximate, for large stores)",
    )
    a = act.add_parser("add", help="embed more examples into an existing datastore")
    a.add_argument("source", metavar="MANIFEST", help="labelled examples (JSON lines)")
    a.add_argument("--index", metavar="DIR", required=True, help="existing datastore folder")
    q = act.add_parser("query", help="the nearest examples to an audio file")
    q.add_argument("source", metavar="FILE", help="audio file")
    q.add_argument("--index", metavar="DIR", required=True, help="existing datastore folder")
    q.add_argument("-k", type=int, default=8, help="neighbours to return")
    for x in (b, a, q):
        x.add_argument(
            "--model",
            metavar="DIR",
            help="whose audio encoder embeds the clips: an audioflamingo model "
            "or a Hugging Face CLAP directory (default: the bundled model)",
        )
    for x in (b, a):
        x.add_argument("--cache", metavar="DIR", help="embedding cache (default: .af-embeddings beside the manifest)")

    e = sub.add_parser("embed", help="embedding vectors of audio files and texts (deterministic, cached)")
    e.add_argument("files", nargs="*", metavar="FILE")
    e.add_argument("--text", action="append", default=[], help="a text to embed (repeatable; AF-CLAP models)")
    e.add_argument("--model", metavar="DIR", help="audioflamingo, AF-CLAP or HF CLAP directory")
    e.add_argument("--cache", metavar="DIR", help="on-disk cache of clip embeddings (default: none)")
    e.add_argument("--out", metavar="FILE.npy", help="write an (N, dim) .npy instead of JSON lines")


def _embedder(model_dir):
    from audioflamingo.retrieval.embed import ClipEmbedder
    from audioflamingo.tasks import default_model_dir

    return ClipEmbedder.from_directory(model_dir or default_model_dir())


def run_index_commands(args) -> int:
    from audioflamingo.errors import UsageError
    from audioflamingo.retrieval.datastore import Datastore, add_to_datastore, build_datastore

    progress = True  # a bar on a terminal, periodic lines elsewhere (progress.py)
    if args.command == "embed":
        import numpy as np

        from audioflamingo.audio.io import load_audio

        from audioflamingo.retrieval.embed import EmbeddingCache, clip_key

        if not args.files and not args.text:
            raise UsageError("embed needs audio files and/or --text")
        emb = _embedder(args.model)
        waves = [load_audio(f, emb.window.sample_rate) for f in args.files]  # all checked before output
        cache = EmbeddingCache(args.cache, emb.name) if args.cache else None
        vecs, names = [], []
        for f, w in zip(args.files, waves):
            key = clip_key(Path(f), 0.0, None)
            v = cache.get(key) if cache else None
            if v is None:
                v = emb.embed(w, name=f)
                if cache:
                    cache.add({key: v})
            vecs.append(v)
            names.append({"file": f})
        if cache:
            cache.save()
        if args.text:
            from audioflamingo.clap.model import AFClap

            clap = getattr(emb.encoder, "clap", None)
            if not isinstance(clap, AFClap):
                raise ValueError("--text needs an AF-CLAP model (--model DIR from `clap train` or `clap import`)")
            import torch

            with torch.no_grad():
                vecs += list(clap.embed_texts(args.text).numpy())
            names += [{"text": t} for t in args.text]
        vecs = np.stack(vecs)
        if args.out:
            np.save(args.out, vecs)
            print(f"{args.out}: {vecs.shape[0]} x {vecs.shape[1]} ({emb.name})", file=sys.stderr)
        else:
            for n, v in zip(names, vecs):
                print(json.dumps({**n, "encoder": emb.name, "embedding": [round(float(x), 6) for x in v]}))
        return 0
    emb = _embedder(args.model)
    if args.action == "build":
        print(json.dumps(build_datastore(args.source, args.out, emb, args.kind, args.cache, progress)))
    elif args.action == "add":
        print(json.dumps(add_to_datastore(args.source, args.index, emb, args.cache, progress)))
    else:
        from audioflamingo.audio.io import load_audio

        store = Datastore.open(args.index, emb.name, emb.dim)
        wave = load_audio(args.source, emb.window.sample_rate)
        hits = store.nearest(emb.embed(wave, name=args.source), args.k, exclude=args.source)
        for h in hits:
            print(
                json.dumps(
                    {
                        "id": h.record.id,
                        "distance": round(h.distance, 6),
                        "audio": str(h.record.audio),
                        "task": h.record.task,
                        "output": h.record.output,
                    },
                    ensure_ascii=False,
                )
            )
    return 0
