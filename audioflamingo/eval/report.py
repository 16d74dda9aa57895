"""`audioflamingo eval report RUN_DIR...`: a markdown table beside the paper's numbers, and plots.

Every figure says what it compares: one panel per metric (CIDEr-D and accuracy never share an axis),
the model and the item count of each run, and the paper's numbers drawn apart and labelled as the
published full-test-set figures, since a 5-item smoke run next to them is not a comparison.
"""

from __future__ import annotations

import json
from pathlib import Path

PAPER = "paper (AF1, published, full test set)"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "—" if v is None else str(v).split(":")[0]


def load_runs(run_dirs, out_dir=None) -> list[dict]:
    """metrics.json of each run folder. The report's own folder (and any earlier report folder: it
    holds report.md, not metrics.json) is skipped, so `eval report runs/eval/* --out runs/eval/report`
    can be run again; any other folder without metrics.json is an error."""
    out = Path(out_dir).resolve() if out_dir is not None else None
    runs = []
    for d in run_dirs:
        d = Path(d)
        f = d / "metrics.json"
        if not f.is_file():
            if d.resolve() == out or (d / "report.md").is_file():
                continue
            raise FileNotFoundError(f"{f}: not found (run `audioflamingo eval` into {d} first)")
        run = json.loads(f.read_text())
        run["_dir"] = str(d)
        runs.append(run)
    if not runs:
        raise FileNotFoundError("no run folder with metrics.json among: " + " ".join(map(str, run_dirs)))
    return runs


def _model(r: dict) -> str:
    return Path(str(r.get("model") or "default")).name or str(r.get("model"))


def panels(runs: list[dict]) -> dict[str, list[dict]]:
    """metric -> bars: one per run of a benchmark whose main metric it is (each with its model,
    shots and item count) and the paper's number for it where there is one."""
    from audioflamingo.eval.benchmarks import BENCHMARKS

    out: dict[str, list[dict]] = {}
    for r in sorted(runs, key=lambda r: (r["benchmark"], _model(r), r["shots"])):
        metric = BENCHMARKS[r["benchmark"]].metrics[0]
        v = r["metrics"].get(metric)
        if isinstance(v, float):
            out.setdefault(metric, []).append(
                {
                    "benchmark": r["benchmark"],
                    "model": _model(r),
                    "shots": r["shots"],
                    "items": r["items"],
                    "value": v,
                    "paper": r.get("paper", {}).get(metric),
                }
            )
    return out


def make_report(run_dirs, out_dir) -> Path:
    from audioflamingo.eval.benchmarks import BENCHMARKS

    runs = load_runs(run_dirs, out_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = sorted({_model(r) for r in runs})
    lines = [
        "# Evaluation report",
        "",
        f"Model{'s' if len(models) > 1 else ''}: " + ", ".join(f"`{m}`" for m in models) + " "
        f"({', '.join(sorted({str(r.get('model')) for r in runs}))}).",
        f"The {PAPER} column is the number printed in the paper for the whole test set; a run over fewer "
        "items (see `items`) is not comparable to it.",
        "",
        f"| benchmark | model | shots | metric | this run | items | missing audio | {PAPER} |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in sorted(runs, key=lambda r: (r["benchmark"], _model(r), r["shots"])):
        for name in BENCHMARKS[r["benchmark"]].metrics:
            lines.append(
                f"| {r['benchmark']} | {_model(r)} | {r['shots']} | {name} | {_fmt(r['metrics'].get(name))} | "
                f"{r['items']} | {r['missing_audio']} | {_fmt(r.get('paper', {}).get(name))} |"
            )
    lines += ["", "Decoding: " + "; ".join(sorted({json.dumps(r["decoding"], sort_keys=True) for r in runs})), ""]
    by_metric = panels(runs)
    if by_metric:
        _benchmarks_png(by_metric, models, out / "benchmarks.png")
        lines.append("![main metric per benchmark, one panel per metric](benchmarks.png)")
    multi = {
        m: bars
        for m, bars in by_metric.items()
        if len({(b["benchmark"], b["shots"]) for b in bars}) > len({b["benchmark"] for b in bars})
    }
    if multi:
        _shots_png(multi, models, out / "shots.png")
        lines.append("![metric vs number of in-context shots](shots.png)")
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _pyplot():
    from audioflamingo.extras import require

    matplotlib = require("matplotlib", "report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _benchmarks_png(by_metric: dict[str, list[dict]], models: list[str], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(
        1,
        len(by_metric),
        figsize=(max(4.5, 1.6 * max(len(b) for b in by_metric.values())) * len(by_metric), 4.2),
        squeeze=False,
    )
    for ax, (metric, bars) in zip(axes[0], sorted(by_metric.items())):
        xs = list(range(len(bars)))
        ax.bar(xs, [b["value"] for b in bars], 0.6, label="this run")
        for x, b in zip(xs, bars):
            ax.annotate(f"n={b['items']}", (x, b["value"]), ha="center", va="bottom", fontsize=7)
            if b["paper"] is not None:  # a marker, not a bar: a published figure, not a run here
                ax.plot(
                    [x - 0.35, x + 0.35],
                    [b["paper"]] * 2,
                    color="black",
                    linestyle="--",
                    linewidth=1.2,
                    label=PAPER if x == next(i for i, c in enumerate(bars) if c["paper"] is not None) else None,
                )
        ax.set_xticks(
            xs,
            [f"{b['benchmark']}\n{b['shots']}-shot" + (f"\n{b['model']}" if len(models) > 1 else "") for b in bars],
            fontsize=7,
        )
        top = max([b["value"] for b in bars] + [b["paper"] or 0 for b in bars])
        ax.set_ylim(0, max(1.0, top * 1.15) if metric in ("accuracy", "macro-F1", "approx-F1") else top * 1.15 or 1)
        ax.set_title(metric)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"model: {', '.join(models)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _shots_png(multi: dict[str, list[dict]], models: list[str], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(multi), figsize=(5 * len(multi), 3.8), squeeze=False)
    for ax, (metric, bars) in zip(axes[0], sorted(multi.items())):
        for bench, model in sorted({(b["benchmark"], b["model"]) for b in bars}):
            pts = sorted(
                (b["shots"], b["value"], b["items"]) for b in bars if (b["benchmark"], b["model"]) == (bench, model)
            )
            if len(pts) < 2:
                continue
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                label=f"{bench} (n={pts[0][2]})" + (f", {model}" if len(models) > 1 else ""),
            )
        ax.set_xticks(sorted({b["shots"] for b in bars}))
        ax.set_xlabel("in-context shots (retrieved)")
        ax.set_ylabel(metric)
        ax.set_ylim(bottom=0)  # from zero: a truncated axis makes a small change look large
        ax.set_title(f"{metric} vs shots")
        ax.legend(fontsize=7)
    fig.suptitle(f"model: {', '.join(models)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
