"""`audioflamingo index build|add|query` and `audioflamingo embed`."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_index_commands(sub) -> None:
    p = sub.add_parser("index", help="datastore of labelled examples for retrieval (build, add, query)",
                       description="audioflamingo index build MANIFEST --out DIR [--kind exact|hnsw|ivf]\n"
                                   "audioflamingo index add MANIFEST --index DIR\n"
                                   "audioflamingo index query FILE --index DIR -k 8",
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["build", "add", "query"])
    p.add_argument("source", help="manifest (build, add) or audio file (query)")
    p.add_argument("--out", metavar="DIR", help="(build) datastore folder to create")
    p.add_argument("--index", metavar="DIR", help="(add, query) existing datastore folder")
    p.add_argument("--model", metavar="DIR", help="whose audio encoder embeds the clips: an audioflamingo model "
                                                   "or a Hugging Face CLAP directory (default: the bundled model)")
    p.add_argument("--kind", choices=["exact", "hnsw", "ivf"], default="exact",
                   help="exact (IndexFlatL2, default), hnsw or ivf (approximate, for large stores)")
    p.add_argument("-k", type=int, default=8, help="(query) neighbours to return")
    p.add_argument("--cache", metavar="DIR", help="embedding cache (default: .af-embeddings beside the manifest)")

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
    from audioflamingo.retrieval.datastore import Datastore, add_to_datastore, build_datastore

    progress = sys.stderr.isatty()
    if args.command == "embed":
        import numpy as np

        from audioflamingo.audio.io import load_audio

        from audioflamingo.retrieval.embed import EmbeddingCache, clip_key

        if not args.files and not args.text:
            raise ValueError("embed needs audio files and/or --text")
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
        if not args.out:
            raise ValueError("index build needs --out DIR")
        print(json.dumps(build_datastore(args.source, args.out, emb, args.kind, args.cache, progress)))
    elif args.action == "add":
        if not args.index:
            raise ValueError("index add needs --index DIR")
        print(json.dumps(add_to_datastore(args.source, args.index, emb, args.cache, progress)))
    else:
        if not args.index:
            raise ValueError("index query needs --index DIR")
        from audioflamingo.audio.io import load_audio

        store = Datastore.open(args.index, emb.name, emb.dim)
        wave = load_audio(args.source, emb.window.sample_rate)
        hits = store.nearest(emb.embed(wave, name=args.source), args.k, exclude=args.source)
        for h in hits:
            print(json.dumps({"id": h.record.id, "distance": round(h.distance, 6), "audio": str(h.record.audio),
                              "task": h.record.task, "output": h.record.output}, ensure_ascii=False))
    return 0
