"""`audioflamingo eval report RUN_DIR...`: a markdown table next to the paper's numbers, and plots."""
from __future__ import annotations

import json
from pathlib import Path


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "—" if v is None else str(v).split(":")[0]


def load_runs(run_dirs) -> list[dict]:
    runs = []
    for d in run_dirs:
        f = Path(d) / "metrics.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f}: not found (run `audioflamingo eval` into {d} first)")
        runs.append(json.loads(f.read_text()))
    return runs


def make_report(run_dirs, out_dir) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audioflamingo.eval.benchmarks import BENCHMARKS

    runs = load_runs(run_dirs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Evaluation report", "",
             "| benchmark | shots | metric | this model | paper (AF1) | items | missing audio |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in sorted(runs, key=lambda r: (r["benchmark"], r["shots"])):
        for name in BENCHMARKS[r["benchmark"]].metrics:
            lines.append(f"| {r['benchmark']} | {r['shots']} | {name} | {_fmt(r['metrics'].get(name))} | "
                         f"{_fmt(r['paper'].get(name))} | {r['items']} | {r['missing_audio']} |")
    lines += ["", "Decoding: " + "; ".join(sorted({json.dumps(r["decoding"], sort_keys=True) for r in runs})), ""]
    # Main metric of each benchmark (best shot setting) beside the paper's number.
    main = {}
    for r in runs:
        m = BENCHMARKS[r["benchmark"]].metrics[0]
        v = r["metrics"].get(m)
        if isinstance(v, float) and (r["benchmark"] not in main or r["shots"] == 0):
            main[r["benchmark"]] = (m, v, r["paper"].get(m))
    if main:
        names = sorted(main)
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names)), 3.5))
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [main[n][1] for n in names], 0.4, label="this model")
        ax.bar([x + 0.2 for x in xs], [main[n][2] or 0 for n in names], 0.4, label="paper (AF1)")
        ax.set_xticks(list(xs), [f"{n}\n{main[n][0]}" for n in names], fontsize=8)
        ax.legend()
        ax.set_title("Main metric per benchmark")
        fig.tight_layout()
        fig.savefig(out / "benchmarks.png", dpi=120)
        plt.close(fig)
        lines.append("![main metric per benchmark](benchmarks.png)")
    by_bench: dict[str, list] = {}
    for r in runs:
        m = BENCHMARKS[r["benchmark"]].metrics[0]
        if isinstance(r["metrics"].get(m), float):
            by_bench.setdefault(r["benchmark"], []).append((r["shots"], r["metrics"][m], m))
    multi = {b: sorted(v) for b, v in by_bench.items() if len({s for s, _, _ in v}) > 1}
    if multi:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for b, pts in sorted(multi.items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{b} ({pts[0][2]})")
        ax.set_xticks(sorted({p[0] for pts in multi.values() for p in pts}))
        ax.set_xlabel("in-context shots (retrieved)")
        ax.set_ylabel("metric")
        ax.set_title("Metric vs number of shots")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "shots.png", dpi=120)
        plt.close(fig)
        lines.append("![metric vs shots](shots.png)")
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
