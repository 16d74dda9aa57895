"""An OpenAI-compatible HTTP API: POST /v1/chat/completions (text + input_audio parts, streaming),
GET /v1/models, GET /health.

A conversation is about one clip: the first `input_audio` part (base64 wav/mp3/flac/ogg) is the
audio, user/assistant turns become the paper's dialogue template, and the last user message is
answered. The server never reads a file path a client sends; only inline base64 audio is accepted.
"""
import asyncio
import base64
import binascii
import io
import json
import time
import uuid
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from audioflamingo.errors import AudioInputError
from audioflamingo.serve.batcher import Batcher, Job, QueueFull


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
    max_tokens_limit: int = 512


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _error(status: int, message: str, headers: dict | None = None):
    kind = {400: "invalid_request_error", 401: "authentication_error", 413: "request_too_large",
            503: "overloaded", 504: "timeout"}.get(status, "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                        headers=headers)


def decode_audio(b64: str, fmt: str | None, pipe, max_seconds: float) -> np.ndarray:
    import soundfile as sf

    from audioflamingo.audio.io import prepare_waveform

    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(400, "input_audio.data is not valid base64") from None
    if not raw:
        raise BadRequest(400, "input_audio.data is empty")
    try:
        with sf.SoundFile(io.BytesIO(raw)) as f:
            if f.frames / f.samplerate > max_seconds:
                raise BadRequest(413, f"audio is {f.frames / f.samplerate:.1f} s long, over the limit of {max_seconds:g} s")
            data, sr = f.read(dtype="float32", always_2d=True), f.samplerate
    except BadRequest:
        raise
    except Exception:
        raise BadRequest(400, f"input_audio is not readable audio (format {fmt or 'unknown'})") from None
    try:
        return prepare_waveform(data, sr, pipe.model.config.window.sample_rate, name="input_audio")
    except AudioInputError as err:
        raise BadRequest(400, err.problem) from None


def parse_messages(body: dict, pipe, cfg: ServeConfig):
    """-> (dialogue turns [(user, assistant|None)], waveform)."""
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest(400, "messages must be a non-empty list")
    audio, turns, pending = None, [], None
    for n, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise BadRequest(400, f"messages[{n}] needs a role of system, user or assistant")
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise BadRequest(400, f"messages[{n}].content must be a string or a list of parts")
        text = []
        for p in parts:
            kind = p.get("type") if isinstance(p, dict) else None
            if kind == "text":
                text.append(str(p.get("text", "")))
            elif kind == "input_audio":
                ia = p.get("input_audio") or {}
                if audio is not None:
                    raise BadRequest(400, "one audio clip per conversation is supported")
                if not isinstance(ia.get("data"), str):
                    raise BadRequest(400, f"messages[{n}]: input_audio.data must be base64 audio")
                audio = decode_audio(ia["data"], ia.get("format"), pipe, cfg.max_audio_seconds)
            elif kind in ("audio_url", "file", "image_url"):
                raise BadRequest(400, f"messages[{n}]: {kind} parts are not accepted; send input_audio as base64")
            else:
                raise BadRequest(400, f"messages[{n}]: unknown content part type {kind!r}")
        text = " ".join(t for t in text if t).strip()
        if m["role"] == "system":
            continue
        if m["role"] == "user":
            if pending is not None:
                pending = f"{pending} {text}".strip()
            else:
                pending = text
        else:
            if pending is None:
                raise BadRequest(400, f"messages[{n}]: an assistant message must follow a user message")
            turns.append((pending, text))
            pending = None
    if pending is None:
        raise BadRequest(400, "the last message must be from the user")
    if audio is None:
        raise BadRequest(400, "the conversation has no input_audio part")
    turns.append((pending or "Describe the sound.", None))
    return turns, audio


def settings_from(body: dict, cfg: ServeConfig):
    from audioflamingo.tasks import GenerationSettings

    try:
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 128)
        temperature = float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0)
        top_p = float(body.get("top_p", 1.0) if body.get("top_p") is not None else 1.0)
        top_k = int(body.get("top_k", 0) or 0)
        seed = body.get("seed")
        seed = int(seed) if seed is not None else None
    except (TypeError, ValueError):
        raise BadRequest(400, "max_tokens, temperature, top_p, top_k and seed must be numbers") from None
    if not 1 <= max_tokens <= cfg.max_tokens_limit:
        raise BadRequest(400, f"max_tokens must be between 1 and {cfg.max_tokens_limit}")
    if int(body.get("n", 1) or 1) != 1:
        raise BadRequest(400, "n must be 1")
    sample = temperature > 0 and (temperature != 1.0 or top_p < 1.0 or top_k > 0 or body.get("temperature") is not None)
    return GenerationSettings(max_new_tokens=max_tokens, do_sample=bool(sample), temperature=temperature or 1.0,
                              top_k=top_k, top_p=top_p, seed=seed)


class Guard:
    """Pure ASGI middleware (so the endpoint still sees client disconnects): 503 while draining,
    bearer-token check on /v1/*, and a body-size check from Content-Length."""

    def __init__(self, app, cfg: ServeConfig, state: dict):
        self.app, self.cfg, self.state = app, cfg, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        response = None
        if self.state["draining"]:
            response = _error(503, "server is shutting down", {"Retry-After": "5"})
        elif scope["path"].startswith("/v1/") and self.cfg.api_key and \
                headers.get("authorization", "") != f"Bearer {self.cfg.api_key}":
            response = _error(401, "missing or wrong bearer token")
        else:
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.cfg.max_body_bytes:
                response = _error(413, f"request body is {int(length)} bytes, over the limit of {self.cfg.max_body_bytes}")
        if response is not None:
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def make_server(app, host: str, port: int, grace_s: float, log_level: str = "info"):
    """A uvicorn server that starts answering 503 the moment it is told to stop (SIGTERM / SIGINT),
    while requests already in flight run to completion."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig, frame):
            app.state.draining["draining"] = True
            super().handle_exit(sig, frame)

    return DrainingServer(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                         timeout_graceful_shutdown=int(grace_s)))


def create_app(pipe, cfg: ServeConfig | None = None):
    from contextlib import asynccontextmanager

    from audioflamingo.text.templates import render_dialogue

    cfg = cfg or ServeConfig()
    state = {"draining": False}

    @asynccontextmanager
    async def lifespan(app):
        app.state.batcher = Batcher(pipe, cfg.max_batch, cfg.window_ms, cfg.queue_size)
        app.state.batcher.start()
        yield
        state["draining"] = True  # new requests get 503 while in-flight ones finish
        while app.state.batcher.in_flight:
            await asyncio.sleep(0.05)
        await app.state.batcher.stop()

    app = FastAPI(title="audioflamingo", lifespan=lifespan)
    app.state.config, app.state.draining = cfg, state

    app.add_middleware(Guard, cfg=cfg, state=state)

    @app.get("/health")
    async def health():
        b = app.state.batcher
        return {"status": "ok", "queued": b.queue.qsize(), "in_flight": b.in_flight, "batches_run": len(b.batches), "dropped": b.dropped,
                "largest_batch": max(b.batches, default=0)}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": cfg.model_name, "object": "model", "created": 0,
                                            "owned_by": "audioflamingo"}]}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        from importlib.resources import files

        return (files("audioflamingo.serve") / "page.html").read_text() if (
            files("audioflamingo.serve") / "page.html").is_file() else "<p>audioflamingo API: POST /v1/chat/completions</p>"

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        raw = await request.body()
        if len(raw) > cfg.max_body_bytes:
            return _error(413, f"request body is {len(raw)} bytes, over the limit of {cfg.max_body_bytes}")
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise BadRequest(400, "the request body must be a JSON object")
            turns, audio = parse_messages(body, pipe, cfg)
            settings = settings_from(body, cfg)
        except json.JSONDecodeError as err:
            return _error(400, f"request body is not valid JSON ({err.msg})")
        except BadRequest as err:
            return _error(err.status, err.message)
        prompt = render_dialogue(turns, pipe.tokenizer, style=pipe.style)
        stream = bool(body.get("stream"))
        job = Job(prompt, audio, settings, stream=asyncio.Queue() if stream else None)
        try:
            app.state.batcher.submit(job)
        except QueueFull:
            return _error(503, "server busy: request queue is full", {"Retry-After": "1"})
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not stream:
            deadline = time.monotonic() + cfg.timeout_s
            try:
                while not job.future.done():
                    if await request.is_disconnected():  # the client went away: free its slot
                        job.cancelled = True
                        return _error(499, "client closed the request")
                    if time.monotonic() > deadline:
                        job.cancelled = True
                        return _error(504, f"generation took longer than {cfg.timeout_s:g} s")
                    await asyncio.wait([job.future], timeout=0.1)
                text = job.future.result()
            except asyncio.CancelledError:
                job.cancelled = True
                raise
            return {"id": cid, "object": "chat.completion", "created": created, "model": cfg.model_name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

        async def events():
            def chunk(delta: dict, finish=None):
                return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                              "model": cfg.model_name, "choices": [
                                                  {"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"
            try:
                yield chunk({"role": "assistant", "content": ""})
                while True:
                    piece = await asyncio.wait_for(job.stream.get(), cfg.timeout_s)
                    if piece is None:
                        break
                    yield chunk({"content": piece})
                yield chunk({}, "stop")
                yield "data: [DONE]\n\n"
            except (asyncio.CancelledError, asyncio.TimeoutError):
                job.cancelled = True
                raise

        return StreamingResponse(events(), media_type="text/event-stream")

    return app
