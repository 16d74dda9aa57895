"""An OpenAI-compatible HTTP API: POST /v1/chat/completions (text + input_audio parts, streaming),
GET /v1/models[/{id}], GET /health, and the chat page at /.

A conversation is about one clip: the first `input_audio` part (base64 wav/mp3/flac/ogg) is the
audio, a system message is the task description, user/assistant turns become the paper's dialogue
template, and the last user message is answered. The server never reads a file path a client sends.

The event loop only routes: JSON parsing, audio decoding and prompt tokenisation run in a small
thread pool (its size bounds how many requests hold decoded audio at once), generation in the
batcher's thread, so /health and streams keep flowing while a large request is being read.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from audioflamingo.serve.batcher import Batcher, Job, QueueFull
from audioflamingo.serve.errors import ApiError, error, install_handlers
from audioflamingo.serve.guard import LOOPBACK, Guard


@dataclass
class ServeConfig:
    model_name: str = "audioflamingo"
    api_key: str | None = None
    max_batch: int = 16
    window_ms: float = 20.0
    queue_size: int = 64
    timeout_s: float = 120.0
    max_body_bytes: int = 25 * 2**20
    max_audio_seconds: float = 300.0
    # rate x channels x seconds, read from the header before decoding: 5 min of 48 kHz stereo
    max_decoded_samples: int = 300 * 48000 * 2
    max_tokens_limit: int = 512
    max_n: int = 8
    decode_workers: int = 2
    allowed_hosts: list[str] = field(default_factory=lambda: list(LOOPBACK))
    allowed_origins: list[str] = field(default_factory=list)


def make_server(app, host: str, port: int, grace_s: float, log_level: str = "info"):
    """A uvicorn server that, told to stop (SIGTERM / SIGINT), keeps listening and answers 503 to new
    requests until the ones in flight have finished (at most `grace_s`), then exits. A second
    signal stops it at once."""
    import uvicorn

    state = app.state.draining

    class DrainingServer(uvicorn.Server):
        drain_signal = None

        def handle_exit(self, sig, frame):
            if self.drain_signal is None:
                self.drain_signal, state["draining"], state["since"] = sig, True, time.monotonic()
                return
            super().handle_exit(sig, frame)

        async def on_tick(self, counter: int) -> bool:
            if (
                self.drain_signal is not None
                and not self.should_exit
                and (state["active"] == 0 or time.monotonic() - state["since"] > grace_s)
            ):
                super().handle_exit(self.drain_signal, None)
            return await super().on_tick(counter)

    return DrainingServer(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=int(grace_s))
    )


def model_card(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "audioflamingo"}


def create_app(pipe, cfg: ServeConfig | None = None):
    from contextlib import asynccontextmanager

    from audioflamingo.serve.completion import Completion

    cfg = cfg or ServeConfig()
    state = {"draining": False, "active": 0, "since": 0.0}
    prep = ThreadPoolExecutor(cfg.decode_workers, thread_name_prefix="af-prepare")

    @asynccontextmanager
    async def lifespan(app):
        app.state.batcher = Batcher(pipe, cfg.max_batch, cfg.window_ms, cfg.queue_size)
        app.state.batcher.start()
        yield
        state["draining"] = True  # new requests get 503 while in-flight ones finish
        while app.state.batcher.in_flight:
            await asyncio.sleep(0.05)
        await app.state.batcher.stop()
        prep.shutdown(wait=False)

    app = FastAPI(title="audioflamingo", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config, app.state.draining = cfg, state
    app.add_middleware(Guard, cfg=cfg, state=state)
    install_handlers(app)

    @app.get("/health")
    async def health():
        b = app.state.batcher
        return {
            "status": "ok",
            "queued": len(b.waiting),  # while draining, the guard answers 503
            "in_flight": b.in_flight,
            "batches_run": len(b.batches),
            "dropped": b.dropped,
            "largest_batch": max(b.batches, default=0),
        }

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card(cfg.model_name)]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != cfg.model_name:
            raise _no_model(model_id)
        return model_card(cfg.model_name)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        from importlib.resources import files

        return (files("audioflamingo.serve") / "page.html").read_text(encoding="utf-8")

    @app.get("/favicon.ico")
    @app.get("/favicon.svg")
    async def favicon():
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        loop = asyncio.get_running_loop()
        raw = await request.body()
        req, prompt, audio, prompt_tokens = await loop.run_in_executor(prep, _prepare, raw, pipe, cfg)
        jobs = [
            Job(prompt, audio, _settings(req, i), index=i, stop=req.stop, top_logprobs=req.top_logprobs)
            for i in range(req.n)
        ]
        events = asyncio.Queue() if req.stream else None
        for j in jobs:
            j.events = events
        try:
            app.state.batcher.submit(jobs)
        except QueueFull:
            return error(503, "server busy: request queue is full", headers={"Retry-After": "1"})
        done = Completion(req, jobs, prompt_tokens, cfg, app.state.batcher, request)
        if req.stream:
            return done.stream()
        return await done.wait()

    return app


def _no_model(name: str) -> ApiError:
    return ApiError(
        404,
        f"the model {name!r} does not exist; this server serves one model (GET /v1/models)",
        "model",
        "model_not_found",
    )


def _prepare(raw: bytes, pipe, cfg: ServeConfig):
    """In a worker thread: body -> request, prompt, waveform, prompt token count."""
    from audioflamingo.serve.audio import decode_clip
    from audioflamingo.serve.request import parse_json, parse_request
    from audioflamingo.text.templates import TASK_DESCRIPTIONS, render_dialogue, tokenize

    # n choices are rows of one batch: never more than a batch (or the queue) holds
    req = parse_request(
        parse_json(raw), cfg.max_tokens_limit, min(cfg.max_n, cfg.max_batch, cfg.queue_size), pipe.style
    )
    if req.model != cfg.model_name:
        raise _no_model(req.model)
    w = pipe.model.config.window
    audio = decode_clip(
        req.audio_b64, req.audio_format, w.sample_rate, cfg.max_audio_seconds, cfg.max_decoded_samples, req.audio_param
    )
    req.audio_b64 = ""  # the request lives until its answer is sent; its base64 text need not
    prompt = render_dialogue(
        req.turns, pipe.tokenizer, task=req.system or TASK_DESCRIPTIONS["dialogue"], style=pipe.style
    )
    prompt_tokens = len(tokenize(prompt, pipe.tokenizer)[0])
    context = getattr(pipe.model.lm.config, "max_position_embeddings", None)
    if context and prompt_tokens + req.max_tokens > context:  # past it the LM's positions mean nothing
        raise ApiError(
            400,
            f"this model's context is {context} tokens; the messages are {prompt_tokens} tokens and max_tokens "
            f"asks for {req.max_tokens} more",
            "messages",
            "context_length_exceeded",
        )
    return req, prompt, audio, prompt_tokens


def _settings(req, index: int):
    from audioflamingo.tasks import GenerationSettings

    # Choice i of a seeded request samples from seed + i: the choices differ, each is reproducible.
    seed = None if req.seed is None else (req.seed + index) % 2**63
    return GenerationSettings(
        max_new_tokens=req.max_tokens,
        do_sample=req.do_sample,
        temperature=req.temperature,
        top_k=req.top_k,
        top_p=req.top_p,
        seed=seed,
    )


FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
    'fill="#0b4f8a"/><path d="M4 16h4l3-8 4 16 4-12 3 8 2-4h4" fill="none" stroke="#fff" '
    'stroke-width="2.5" stroke-linejoin="round"/></svg>'
)
