"""Battery of hostile and broken inputs: every case says pass or fail, the runner prints a table
(results and what a pass means: docs/ROBUSTNESS.md).

    python -m bench.battery                       # every group (a few minutes on 2 cores)
    python -m bench.battery --only model,recipe   # some groups
    python -m bench.battery -k symlink --json out.json

Adding cases: a module `bench/battery/cases_<group>.py` holding a list named `cases`, filled with
`harness.collection`:

    from bench.battery.harness import collection, expect_one_line_error

    cases, case = collection("mygroup")

    @case("what is tried, in a few words")
    def _(ctx):
        res = ctx.cli("caption", str(ctx.tmp() / "missing.wav"), "--model", str(ctx.model_dir()))
        expect_one_line_error(res, "missing.wav")

A case passes when its function returns; `harness.Fail` (or AssertionError) is a failure with its
message; any other exception is a failure reported with its type (a bug in the code under test or
in the case). Cases share one `Context` (a temporary folder, a tiny model, a clip) and must not
depend on each other's order.
"""
