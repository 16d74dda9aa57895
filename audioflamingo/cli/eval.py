"""`audioflamingo eval BENCH ...`, `eval report RUN_DIR...`, `eval list`."""

from __future__ import annotations

import json
import sys


def add_eval_command(sub, benchmarks: bool = True) -> None:
    """benchmarks=False leaves out the per-benchmark sub-commands (their registry's import), for
    command lines that are not `eval ...`."""
    p = sub.add_parser(
        "eval",
        help="score a model on a paper benchmark; `eval list`; `eval report RUN...`",
        description="Score a model on one of the paper's benchmarks (one sub-command per benchmark, "
        "each with its data layout), list them, or report finished runs.",
    )
    bench = p.add_subparsers(dest="target", metavar="BENCHMARK|list|report", required=True)
    q = bench.add_parser("list", help="the benchmarks, their layouts and the paper's numbers")
    q.add_argument("--json", action="store_true", help="one JSON object per benchmark")
    q = bench.add_parser(
        "report",
        help="a markdown table and plots of finished runs",
        description="Collect the metrics.json of finished runs into report.md, benchmarks.png "
        "(one panel per metric) and shots.png. Folders without metrics.json (such as "
        "an earlier report matched by the same glob) are skipped.",
    )
    q.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders holding metrics.json")
    q.add_argument("--out", metavar="DIR", default="runs/eval/report", help="output folder")
    if not benchmarks:
        return
    from audioflamingo.eval.benchmarks import BENCHMARKS

    for b in BENCHMARKS.values():
        paper = ", ".join(f"{k} {v}" for k, v in b.paper.items()) or "none"
        q = bench.add_parser(
            b.name,
            help=f"{b.task}: {', '.join(b.metrics)}",
            description=f"{b.name}: {b.task}, scored by {', '.join(b.metrics)}.\n"
            f"--data layout: {b.layout}\npaper (AF1): {paper}",
            epilog=f"example:\n  audioflamingo eval {b.name} --model DIR --data {b.name}/",
        )
        _add_run_args(q)


def _add_run_args(p) -> None:
    p.add_argument("--model", metavar="DIR", help="model directory (default: the bundled model)")
    p.add_argument("--data", metavar="DIR", required=True, help="the benchmark's folder, in its public layout")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/eval/<bench>-<k>shot)")
    p.add_argument("--shots", type=int, default=0, help="retrieved in-context examples per query (needs --rag)")
    p.add_argument("--rag", metavar="MANIFEST", help="labelled examples to retrieve shots from")
    p.add_argument(
        "--cls-mode",
        choices=["likelihood", "calibrated", "generate"],
        default="likelihood",
        help="classification: rank the options by log-likelihood, by log-likelihood minus the same "
        "prompt's with the query audio silenced (calibrated: a label the examples favour whatever "
        "the audio no longer wins by default), or generate and match",
    )
    p.add_argument("--batch-size", type=int, default=8, help="clips per batch")
    p.add_argument("--limit", type=int, help="first N items only (smoke tests)")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest answer")
    p.add_argument("--beams", type=int, default=1, help="beam width (the paper's benchmarks used 3)")


def run_eval_command(args) -> int:
    from audioflamingo.eval.benchmarks import BENCHMARKS

    if args.target == "list":
        for b in BENCHMARKS.values():
            if args.json:
                print(
                    json.dumps(
                        {"name": b.name, "task": b.task, "metrics": b.metrics, "layout": b.layout, "paper": b.paper}
                    )
                )
                continue
            paper = ", ".join(f"{k} {v}" for k, v in b.paper.items()) or "—"
            print(f"{b.name:18s} {b.task:9s} {b.layout:52s} paper: {paper}")
        return 0
    if args.target == "report":
        from audioflamingo.eval.report import make_report

        print(make_report(args.run_dirs, args.out))
        return 0
    from audioflamingo.eval.runner import run_eval
    from audioflamingo.tasks import GenerationSettings

    res = run_eval(
        args.target,
        args.model,
        args.data,
        args.out,
        shots=args.shots,
        rag=args.rag,
        batch_size=args.batch_size,
        cls_mode=args.cls_mode,
        limit=args.limit,
        device=args.device,
        settings=GenerationSettings(max_new_tokens=args.max_new_tokens, num_beams=args.beams),
        progress=True,
    )
    if res["missing_audio"]:
        print(
            f"audioflamingo: warning: {res['missing_audio']} audio file(s) missing, e.g. {res['missing_examples'][:3]}",
            file=sys.stderr,
        )
    print(json.dumps({k: res[k] for k in ("benchmark", "shots", "items", "missing_audio", "metrics")}))
    return 0
