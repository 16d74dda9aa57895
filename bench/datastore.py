"""Datastore latency, recall and build cost: exact vs approximate, 10k / 100k / 1M random vectors.

For each size: build each index kind (time, peak RSS growth, file size), then 1,000 single-vector
queries (k=10): p50/p99 latency and recall@10 against exact search. Approximate kinds sweep their
search parameter upwards and report the first setting that reaches recall@10 >= 0.95.

    python bench/datastore.py --sizes 10000,100000,1000000 --dim 128 --out bench/results/datastore-cpu.json
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def latency(index, queries) -> tuple[float, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None], 10)
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def main():
    import faiss

    from audioflamingo.data.manifest import Record
    from audioflamingo.retrieval.datastore import Datastore

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--kinds", default="exact,hnsw,ivf")
    ap.add_argument("--out")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    res = {"dim": args.dim, "queries": args.queries, "threads": faiss.omp_get_max_threads(), "rows": []}
    for n in [int(s) for s in args.sizes.split(",")]:
        x = rng.standard_normal((n, args.dim)).astype(np.float32)
        q = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
        truth = None
        for kind in args.kinds.split(","):
            d = Path(tempfile.mkdtemp(prefix="af-ds-")) / kind
            before = rss_mb()
            t = time.perf_counter()
            s = Datastore.create(d, "bench", args.dim, kind, train_vectors=x[: min(n, 100_000)])
            # metadata rows are part of a real build; the records are tiny here
            recs = [Record(id=str(i), audio=Path(f"/x/{i}.wav"), task="caption", output="") for i in range(n)]
            s.add_vectors(x, recs)
            s.save()
            build_s = time.perf_counter() - t
            grew = rss_mb() - before
            size_mb = (d / "index.faiss").stat().st_size / 2**20
            del s, recs
            store = Datastore.open(d, "bench", args.dim)
            _, got = store.search(q, 10)
            if kind == "exact":
                truth = got
            param, value = ("nprobe", None) if kind == "ivf" else ("efSearch", None) if kind == "hnsw" else (None, None)
            sweep = []
            for v in [None] if kind == "exact" else ([16, 32, 64, 128, 256] if kind == "ivf" else [64, 128, 256, 512]):
                if kind == "ivf":
                    store.index.nprobe = v
                elif kind == "hnsw":
                    store.index.hnsw.efSearch = v
                _, got = store.search(q, 10)
                recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))
                p50, p99 = latency(store.index, q[: min(len(q), 1000)])
                sweep.append({"param": v, "recall@10": recall, "p50_ms": p50, "p99_ms": p99})
                if recall >= 0.95:
                    break
            row = {
                "n": n,
                "kind": kind,
                "build_s": build_s,
                "rss_growth_mb": grew,
                "index_mb": size_mb,
                "search_param": param,
                "sweep": sweep,
                "chosen": sweep[-1],
            }
            res["rows"].append(row)
            c = sweep[-1]
            print(
                f"n={n:>8} {kind:5s} build {build_s:7.1f} s, +{grew:7.0f} MB RSS, file {size_mb:7.1f} MB | "
                f"{param or '-'}={c['param']} recall@10 {c['recall@10']:.3f} p50 {c['p50_ms']:.3f} ms "
                f"p99 {c['p99_ms']:.3f} ms",
                flush=True,
            )
            del store
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
