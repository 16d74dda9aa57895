"""`audioflamingo eval BENCH ...`, `eval report RUN_DIR...`, `eval list`."""
from __future__ import annotations

import json
import sys


def add_eval_command(sub) -> None:
    p = sub.add_parser(
        "eval", help="score a model on a paper benchmark; `eval report RUN...`; `eval list`",
        description="audioflamingo eval BENCH --model DIR --data DIR [--shots k --rag MANIFEST]\n"
                    "audioflamingo eval report RUN_DIR... [--out DIR]\n"
                    "audioflamingo eval list",
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("target", help="a benchmark name, `report` or `list`")
    p.add_argument("run_dirs", nargs="*", help="(report) run folders holding metrics.json")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the bundled model)")
    p.add_argument("--data", metavar="DIR", help="the benchmark's folder, in its public layout")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/eval/<bench>-<k>shot); report: output folder")
    p.add_argument("--shots", type=int, default=0, help="retrieved in-context examples per query (needs --rag)")
    p.add_argument("--rag", metavar="MANIFEST", help="labelled examples to retrieve shots from")
    p.add_argument("--cls-mode", choices=["likelihood", "generate"], default="likelihood",
                   help="classification: rank the options by log-likelihood (default) or generate and match")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, help="first N items only (smoke tests)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--beams", type=int, default=1, help="beam width (the paper's benchmarks used 3)")


def run_eval_command(args) -> int:
    from audioflamingo.eval.benchmarks import BENCHMARKS

    if args.target == "list":
        for b in BENCHMARKS.values():
            paper = ", ".join(f"{k} {v}" for k, v in b.paper.items()) or "—"
            print(f"{b.name:18s} {b.task:9s} {b.layout:52s} paper: {paper}")
        return 0
    if args.target == "report":
        from audioflamingo.eval.report import make_report

        if not args.run_dirs:
            raise ValueError("eval report needs at least one RUN_DIR")
        print(make_report(args.run_dirs, args.out or "runs/eval/report"))
        return 0
    from audioflamingo.eval.runner import run_eval
    from audioflamingo.tasks import GenerationSettings

    if not args.data:
        raise ValueError(f"eval {args.target} needs --data DIR (layout: {BENCHMARKS[args.target].layout})"
                         if args.target in BENCHMARKS else f"unknown benchmark {args.target!r}")
    res = run_eval(args.target, args.model, args.data, args.out, shots=args.shots, rag=args.rag,
                   batch_size=args.batch_size, cls_mode=args.cls_mode, limit=args.limit, device=args.device,
                   settings=GenerationSettings(max_new_tokens=args.max_new_tokens, num_beams=args.beams),
                   progress=sys.stderr.isatty())
    if res["missing_audio"]:
        print(f"audioflamingo: warning: {res['missing_audio']} audio file(s) missing, e.g. "
              f"{res['missing_examples'][:3]}", file=sys.stderr)
    print(json.dumps({k: res[k] for k in ("benchmark", "shots", "items", "missing_audio", "metrics")}))
    return 0
