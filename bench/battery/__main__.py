"""Run the battery: `python -m bench.battery [--only GROUPS] [-k TEXT] [--json OUT] [--markdown]`."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
import warnings
from pathlib import Path

from bench.battery.harness import Case, Context, Fail


def discover() -> list[Case]:
    here = Path(__file__).parent
    found: list[Case] = []
    for mod in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if mod.name.startswith("cases_"):
            found += importlib.import_module(f"bench.battery.{mod.name}").cases
    return found


def run_case(c: Case, ctx: Context) -> tuple[bool, str, float]:
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.fn(ctx)
        ok, detail = True, ""
    except Fail as err:
        ok, detail = False, str(err)
    except AssertionError as err:
        ok, detail = False, str(err) or "assertion failed"
    except Exception as err:  # noqa: BLE001 - reported, the battery goes on
        ok, detail = False, f"case raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
    return ok, detail, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.battery", description=__doc__)
    ap.add_argument("--only", help="comma-separated groups (cli, model, manifest, recipe, training, ...)")
    ap.add_argument("-k", dest="contains", help="only cases whose name contains this")
    ap.add_argument("--json", help="write every case's result to this file")
    ap.add_argument("--markdown", action="store_true", help="print the tables (per group, then per case) as Markdown")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    cases = discover()
    if args.only:
        groups = set(args.only.split(","))
        cases = [c for c in cases if c.group in groups]
    if args.contains:
        cases = [c for c in cases if args.contains.lower() in c.name.lower()]
    if args.list:
        for c in cases:
            print(f"{c.group:10s} {c.name}")
        return 0
    ctx = Context()
    results = []
    try:
        for c in cases:
            ok, detail, dt = run_case(c, ctx)
            results.append({"group": c.group, "case": c.name, "pass": ok, "detail": detail, "seconds": round(dt, 2)})
            print(
                f"{'PASS' if ok else 'FAIL'}  {c.group:9s} {c.name}" + (f"  -- {detail}" if detail else ""), flush=True
            )
    finally:
        ctx.close()
    groups: dict[str, list[int]] = {}
    for r in results:
        g = groups.setdefault(r["group"], [0, 0])
        g[0] += r["pass"]
        g[1] += 1
    total = [sum(g[0] for g in groups.values()), sum(g[1] for g in groups.values())]
    print()
    if args.markdown:
        print("| group | pass | cases |\n|---|---|---|")
        for name, (p, n) in groups.items():
            print(f"| {name} | {p} | {n} |")
        print(f"| all | {total[0]} | {total[1]} |")
        for name in groups:
            print(f"\n**{name}**\n\n| case | result |\n|---|---|")
            for r in results:
                if r["group"] == name:
                    cell = "pass" if r["pass"] else f"FAIL: {r['detail'][:120]}".replace("|", "/")
                    print(f"| {r['case'].replace('|', '/')} | {cell} |")
    else:
        for name, (p, n) in groups.items():
            print(f"{name:10s} {p:4d} / {n}")
        print(f"{'all':10s} {total[0]:4d} / {total[1]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"groups": groups, "cases": results}, indent=1) + "\n")
    return 0 if total[0] == total[1] else 1


if __name__ == "__main__":
    sys.exit(main())
