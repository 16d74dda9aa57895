"""Command line: `audioflamingo caption|ask|classify|chat|init|info|...`.

Exit codes: 0 success; 1 bad input or a failed run (one line, `audioflamingo: FILE: problem`, and
nothing written); 2 a usage error (argparse's, or `UsageError`: options that cannot go together).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

EXIT_FAILED, EXIT_USAGE = 1, 2

EPILOG = """examples:
  audioflamingo caption clip.wav other.flac --model DIR
  audioflamingo ask clip.wav "Is there speech?" --json
  audioflamingo classify clip.wav --labels dog,cat,rain
  audioflamingo chat clip.wav
  audioflamingo init --preset tiny --out my-model      # an untrained model to try the commands
  audioflamingo data validate train.jsonl
  audioflamingo train recipes/tiny-toy.yaml --dry-run
  audioflamingo eval clotho-v2 --model DIR --data clotho/   # `eval list` shows all benchmarks
Without --model the bundled default model is used (when this version ships one).
Exit codes: 0 done; 1 bad input or a failed run (one line on stderr); 2 usage error."""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", help="model directory (from save_pretrained / init / convert)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default=None,
        help="weights dtype (default: as saved; bfloat16 halves memory on GPU)",
    )
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    p.add_argument("--batch-size", type=int, default=8, help="clips per batch (default: 8)")
    p.add_argument(
        "--long-audio",
        choices=["first", "spread"],
        default=None,
        help="audio longer than the window budget: first (its first windows, with a warning) or spread "
        "(the windows spread over the whole file) (default: the model's setting, first)",
    )
    p.add_argument(
        "--lm-impl",
        choices=["auto", "transformers"],
        default="auto",
        help="auto: Qwen2/Llama LMs run on the project's lean runtime for greedy decoding (same "
        "outputs, about 3 s less start-up); transformers: always the transformers model",
    )


def _add_rag_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("retrieval-augmented in-context learning")
    g.add_argument("--rag", metavar="DIR", help="datastore (audioflamingo index build) or manifest to retrieve from")
    g.add_argument("--shots", type=int, default=4, help="retrieved examples per clip (default 4; with --rag)")


def _add_gen_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding (greedy unless --sample or --beams)")
    g.add_argument("--max-new-tokens", type=int, default=64, help="longest answer, in tokens")
    g.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    g.add_argument("--temperature", type=float, default=1.0, help="with --sample: flatter (>1) or sharper (<1)")
    g.add_argument("--top-k", type=int, default=0, help="0 = off")
    g.add_argument("--top-p", type=float, default=1.0, help="with --sample: nucleus mass (1 = off)")
    g.add_argument("--beams", type=int, default=1, help="beam search width (1 = off)")
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed for --sample: every input draws from its own stream seeded with it, so its "
        "text is the same alone or batched, on either runtime",
    )


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    from audioflamingo.cli.help import Parser

    ap = Parser(
        prog="audioflamingo",
        description="Audio Flamingo: caption, question-answer, classify and chat about audio.",
        epilog=EPILOG,
    )
    ap.add_argument("--version", action="version", version="audioflamingo 0.1.0")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("caption", help="describe each audio file in a sentence")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (wav, flac, ogg, mp3, ...)")
    _add_model_args(p)
    _add_gen_args(p)
    _add_rag_args(p)

    p = sub.add_parser("ask", help="answer a question about audio files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("question", help="the question (last argument)")
    _add_model_args(p)
    _add_gen_args(p)
    _add_rag_args(p)

    p = sub.add_parser("classify", help="pick the best label from a closed set (log-likelihood ranking)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--labels", required=True, help="comma-separated labels, e.g. dog,cat,rain")
    p.add_argument("--generate", action="store_true", help="let the model write its answer instead of ranking")
    p.add_argument(
        "--question",
        default="Which label best describes the sound?",
        help="the instruction before the options (the default model knows 'Which instrument is playing?')",
    )
    _add_model_args(p)
    _add_gen_args(p)
    _add_rag_args(p)

    p = sub.add_parser("chat", help="multi-turn dialogue about one clip (/reset, /quit)")
    p.add_argument("file", metavar="FILE")
    _add_model_args(p)
    _add_gen_args(p)

    p = sub.add_parser("init", help="write a randomly initialised model of a preset (for trying things out)")
    p.add_argument("--preset", default="tiny", choices=["tiny", "af1", "af2"])
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--lm", metavar="DIR", help="local Hugging Face causal LM directory (af1/af2)")
    p.add_argument("--clap", metavar="DIR", help="local Hugging Face CLAP directory (af1/af2)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP API with dynamic batching (and a web page at /)")
    p.add_argument("--model", metavar="DIR")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` (or env AUDIOFLAMINGO_API_KEY)")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--batch-window-ms", type=float, default=20.0)
    p.add_argument("--queue-size", type=int, default=64, help="waiting requests beyond this get 503")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request generation timeout (s)")
    p.add_argument("--max-audio-seconds", type=float, default=300.0)
    p.add_argument("--max-body-mb", type=float, default=25.0)
    p.add_argument(
        "--max-decoded-samples",
        type=int,
        default=300 * 48000 * 2,
        help="refuse audio whose header promises more samples (rate x channels x seconds)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also answer requests whose Host header is HOST ('*': any); repeatable",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept browser requests from ORIGIN, e.g. https://app.example ('*': any); repeatable",
    )
    p.add_argument("--device", default="cpu")

    p = sub.add_parser(
        "demo",
        help="caption a clip and answer a question about it (default: the bundled clip and the bundled default model)",
    )
    p.add_argument("file", nargs="?", help="audio file (default: the bundled example clip)")
    p.add_argument("--question", default="What do you hear first?")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the bundled default model)")
    p.add_argument(
        "--lm-impl",
        choices=["auto", "transformers"],
        default="auto",
        help="auto: the lean runtime where it applies (Qwen2/Llama, greedy); transformers: always",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    p = sub.add_parser("info", help="print a model's configuration and parameter counts")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the bundled default model)")
    p.add_argument("--json", action="store_true", help="print the whole configuration as JSON")

    from audioflamingo.cli.clap import add_clap_commands
    from audioflamingo.cli.convert import add_convert_command
    from audioflamingo.cli.eval import add_eval_command
    from audioflamingo.cli.index import add_index_commands
    from audioflamingo.cli.train import add_train_commands

    add_train_commands(sub)
    # One sub-command per benchmark means importing the registry: only when the command is eval.
    add_eval_command(sub, benchmarks=argv is None or "eval" in argv)
    add_index_commands(sub)
    add_clap_commands(sub)
    add_convert_command(sub)
    return ap


def _settings(args):
    from audioflamingo.tasks import GenerationSettings

    # Checked before any output: 0 or less would crash mid-batch (batch size) or be silently odd.
    for flag in ("max_new_tokens", "beams", "batch_size"):
        if getattr(args, flag, 1) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, not {getattr(args, flag)}")
    return GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        num_beams=args.beams,
        seed=args.seed,
    )


def _emit(args, record: dict, text: str) -> None:
    print(json.dumps(record, ensure_ascii=False) if args.json else text, flush=True)


def run(args) -> int:
    from audioflamingo.tasks import AudioFlamingoPipeline

    if getattr(args, "device", "cpu") != "cpu":
        from audioflamingo.device import check_device

        check_device(args.device)

    if args.command == "init":
        from audioflamingo.presets import build

        model, tok = build(args.preset, lm_dir=args.lm, clap_dir=args.clap, seed=args.seed)
        model.save_pretrained(args.out, tok)
        print(f"wrote an untrained {args.preset} model to {args.out}")
        return 0

    if args.command == "serve":
        import os

        from audioflamingo.extras import require

        require("fastapi"), require("uvicorn")  # the serve extra: one line naming it when absent

        from audioflamingo.serve.app import ServeConfig, create_app, make_server
        from audioflamingo.serve.guard import LOOPBACK

        pipe = AudioFlamingoPipeline.load(args.model, device=args.device)
        cfg = ServeConfig(
            model_name=os.path.basename(str(args.model or "audioflamingo-default").rstrip("/")),
            api_key=args.api_key or os.environ.get("AUDIOFLAMINGO_API_KEY"),
            max_batch=args.max_batch,
            window_ms=args.batch_window_ms,
            queue_size=args.queue_size,
            timeout_s=args.timeout,
            max_body_bytes=int(args.max_body_mb * 2**20),
            max_audio_seconds=args.max_audio_seconds,
            max_decoded_samples=args.max_decoded_samples,
            allowed_hosts=[*LOOPBACK, *([args.host] if args.host not in ("0.0.0.0", "::") else []), *args.allow_host],
            allowed_origins=args.allow_origin,
        )
        if args.host not in ("127.0.0.1", "localhost", "::1") and not cfg.api_key:
            print(f"audioflamingo: warning: serving on {args.host} without --api-key", file=sys.stderr)
        if args.host in ("0.0.0.0", "::") and not args.allow_host:
            print(
                f"audioflamingo: warning: on {args.host} only requests addressed to a loopback name are answered; "
                "add --allow-host NAME for the names clients use",
                file=sys.stderr,
            )
        make_server(create_app(pipe, cfg), args.host, args.port, args.timeout).run()
        return 0

    if args.command == "convert":
        from audioflamingo.cli.convert import run_convert_command

        return run_convert_command(args)
    if args.command == "clap":
        from audioflamingo.cli.clap import run_clap_command

        return run_clap_command(args)

    if args.command in ("index", "embed"):
        from audioflamingo.cli.index import run_index_commands

        return run_index_commands(args)

    if args.command == "eval":
        from audioflamingo.cli.eval import run_eval_command

        return run_eval_command(args)

    if args.command in ("data", "train", "average"):
        from audioflamingo.cli.train import run_train_commands

        return run_train_commands(args)

    if args.command == "demo":
        from audioflamingo.tasks import AudioFlamingoPipeline, example_clip

        clip = args.file or example_clip()
        pipe = AudioFlamingoPipeline.load(args.model, lite=args.lm_impl == "auto")
        caption, answer = pipe.caption([clip])[0], pipe.ask(clip, args.question)
        if args.json:
            print(
                json.dumps(
                    {"file": str(clip), "caption": caption, "question": args.question, "answer": answer},
                    ensure_ascii=False,
                )
            )
            return 0
        print(f"clip:     {clip}")
        print(f"caption:  {caption}")
        print(f"question: {args.question}")
        print(f"answer:   {answer}")
        return 0

    if args.command == "info":
        from audioflamingo.model.flamingo import AudioFlamingo
        from audioflamingo.tasks import default_model_dir

        model = AudioFlamingo.from_pretrained(args.model or default_model_dir())
        counts = {
            name: sum(p.numel() for p in m.parameters())
            for name, m in [
                ("lm", model.lm),
                ("encoder", model.encoder),
                ("transformation", model.transformation),
                ("xattn", model.fusion.xattn),
            ]
        }
        if args.json:
            print(json.dumps({"config": model.config.to_dict(), "parameters": counts}))
            return 0
        c, lm = model.config, model.config.lm
        print(f"preset:         {c.preset} (prompt style {c.prompt_style})")
        print(
            f"language model: {lm.get('model_type')}, {lm.get('num_hidden_layers')} layers, "
            f"hidden {lm.get('hidden_size')}, vocabulary {lm.get('vocab_size')}"
        )
        print(
            f"encoder:        {c.encoder.kind} ({c.encoder.output}, {c.encoder.tokens_per_window} tokens x "
            f"{c.encoder.dim} per window)"
        )
        print(
            f"windows:        {c.window.window_seconds:g} s every {c.window.hop_seconds:g} s, at most "
            f"{c.window.max_windows}, {c.window.sample_rate} Hz, long audio: {c.window.long_audio}"
        )
        print(
            f"transformation: {c.transformation.num_layers} layers x {c.transformation.dim}, "
            f"{c.transformation.positions} positions"
        )
        print(f"xattn:          every {c.xattn.every_n_layers} layer(s), {c.xattn.heads} heads")
        print("parameters:     " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        return 0

    files = [args.file] if args.command == "chat" else args.files
    pipe = AudioFlamingoPipeline.load(
        args.model,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        lite=args.lm_impl == "auto",
        long_audio=args.long_audio,
    )
    pipe.load_all(files)  # every input checked before any output is written
    settings = _settings(args)
    progress = sys.stderr.isatty() and len(files) > 1

    retriever = pipe.retriever(args.rag) if getattr(args, "rag", None) else None

    def shots_for(f):
        if retriever is None:
            return [], []
        shots, hits = retriever.shots(pipe._wave(f)[0], args.shots, exclude=f)
        return shots, [{"id": h.record.id, "distance": round(h.distance, 6), "output": h.record.output} for h in hits]

    if args.command in ("caption", "ask"):
        from audioflamingo.tasks import Query
        from audioflamingo.text.templates import DEFAULT_INSTRUCTIONS, TASK_DESCRIPTIONS

        task = "caption" if args.command == "caption" else "aqa"
        instruction = DEFAULT_INSTRUCTIONS["caption"] if task == "caption" else args.question
        retrieved = [shots_for(f) for f in files]
        queries = [Query(f, instruction, TASK_DESCRIPTIONS[task], shots=sh) for f, (sh, _) in zip(files, retrieved)]
        answers = pipe.answer(queries, settings, progress=progress)
        key = "caption" if task == "caption" else "answer"
        for f, a, (_, used) in zip(files, answers, retrieved):
            rec = {"file": f, key: a} | ({"question": args.question} if task == "aqa" else {})
            if retriever is not None:
                rec["examples"] = used
            _emit(args, rec, f"{f}\t{a}" if len(files) > 1 else a)
    elif args.command == "classify":
        labels = [l.strip() for l in args.labels.split(",") if l.strip()]
        for f in files:
            sh, used = shots_for(f)
            ranked = pipe.classify(
                f, labels, instruction=args.question, generate=args.generate, settings=settings, shots=sh
            )
            best = ranked[0]["label"]
            rec = {"file": f, "label": best, "scores": ranked} | ({"examples": used} if retriever else {})
            _emit(args, rec, f"{f}\t{best}" if len(files) > 1 else best)
    elif args.command == "chat":
        session = pipe.chat(args.file)
        interactive = sys.stdin.isatty()
        if interactive:
            print(f"chatting about {args.file} (/reset clears the history, /quit leaves)", file=sys.stderr)
        while True:
            if interactive:
                print("you> ", end="", flush=True, file=sys.stderr)
            line = sys.stdin.readline()
            if not line:
                break
            msg = line.strip()
            if not msg:
                continue
            if msg == "/quit":
                break
            if msg == "/reset":
                session.reset()
                print("(history cleared)", file=sys.stderr)
                continue
            reply = session.send(msg, settings)
            _emit(args, {"user": msg, "assistant": reply, "turn": len(session.turns)}, reply)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    from audioflamingo.errors import AudioFlamingoError, UsageError

    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"audioflamingo: warning: {msg}\n"
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        return run(args)
    except UsageError as err:  # the command line itself: as argparse's own usage errors
        print(f"audioflamingo: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (AudioFlamingoError, FileNotFoundError, ValueError) as err:  # bad input, or the run failed
        print(f"audioflamingo: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
