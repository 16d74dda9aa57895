"""`audioflamingo serve` (the bundled default model, on 127.0.0.1 only) against hostile and broken
requests, and the OpenAI API's promises (issues 16 and 20). Each server is a real `python -m
audioflamingo serve` process on a free loopback port; every case sends a bounded number of requests
(at most 100 for the load cases), so the group runs in about a minute on 2 cores.

    python -m bench.battery --only server
"""

from __future__ import annotations

import atexit
import base64
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.battery.harness import REPO, Fail, collection

cases, case = collection("server")
URL = "/v1/chat/completions"
_servers: dict[tuple, "Serve"] = {}


class Serve:
    """A `serve` process; its peak RSS is read from /proc."""

    def __init__(self, *args: str):
        import httpx

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "audioflamingo", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise Fail(f"serve exited: {self.proc.stderr.read()[-500:]}") from None
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {args[args.index('--api-key') + 1]}"} if "--api-key" in args else {}
        self.model = httpx.get(self.url + "/v1/models", headers=headers).json()["data"][0]["id"]

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()[1]


def server(*args: str) -> Serve:
    """One shared process per argument list (the cases that kill theirs use `Serve` directly)."""
    if args not in _servers:
        _servers[args] = Serve(*args)
    return _servers[args]


@atexit.register
def _stop_all():
    for s in _servers.values():
        s.stop()


def _wav_b64(seconds=1.0, rate=16000, channels=1, fmt="WAV", silent=False) -> str:
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros_like(t) if silent else 0.4 * np.sin(2 * np.pi * 440 * t)
    buf = io.BytesIO()
    sf.write(buf, np.repeat(x[:, None], channels, 1).astype(np.float32), rate, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def _example_b64() -> str:
    return base64.b64encode((REPO / "audioflamingo/assets/example.flac").read_bytes()).decode()


def _messages(audio=None, text="What do you hear?", fmt="wav"):
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "input_audio", "input_audio": {"data": audio or _wav_b64(), "format": fmt}},
            ],
        }
    ]


def _body(srv: Serve, **over) -> dict:
    return {"model": srv.model, "messages": _messages(), "max_tokens": 8, **over}


def _post(srv: Serve, body=None, raw: bytes | None = None, headers=None, timeout=60):
    import httpx

    h = {"content-type": "application/json", **(headers or {})}
    return httpx.post(
        srv.url + URL, content=raw if raw is not None else json.dumps(body).encode(), headers=h, timeout=timeout
    )


def expect_error(r, status: int, param: str | None = "", needle: str = "") -> dict:
    """A JSON error of OpenAI's shape with this status (and param, and text in its message)."""
    if r.status_code != status:
        raise Fail(f"HTTP {r.status_code}, not {status}: {r.text[:200]}")
    if not r.headers.get("content-type", "").startswith("application/json"):
        raise Fail(f"content-type {r.headers.get('content-type')}: {r.text[:200]}")
    err = r.json().get("error")
    if not isinstance(err, dict) or set(err) != {"message", "type", "param", "code"}:
        raise Fail(f"not an OpenAI error object: {r.text[:200]}")
    if param != "" and err["param"] != param:
        raise Fail(f"param is {err['param']!r}, not {param!r}: {err['message'][:200]}")
    if needle and needle.lower() not in err["message"].lower():
        raise Fail(f"message lacks {needle!r}: {err['message'][:200]}")
    return err


# ---------------------------------------------------------------------------- malformed requests
def _raw(srv, key: str, literal: str) -> bytes:
    return json.dumps(_body(srv, **{key: 12345})).replace(f'"{key}": 12345', f'"{key}": {literal}').encode()


MALFORMED = [  # (name, body maker, param, text in the message)
    ("invalid UTF-8 body", lambda s: b'{"model": "\xff\xfe"}', None, "UTF-8"),
    ("JSON nested 100000 deep", lambda s: b"[" * 100000, None, "nested"),
    ("JSON syntax error", lambda s: b'{"model": ', None, "not valid JSON"),
    ("body is a JSON array", lambda s: b"[]", None, "JSON object"),
    ("empty body", lambda s: b"", None, "not valid JSON"),
    ('n: "two"', lambda s: _body(s, n="two"), "n", "integer"),
    ("n: 0", lambda s: _body(s, n=0), "n", ""),
    ("n: 1000", lambda s: _body(s, n=1000), "n", "limit"),
    ("max_tokens: 1e400", lambda s: _raw(s, "max_tokens", "1e400"), "max_tokens", "integer"),
    ("max_tokens: 0", lambda s: _body(s, max_tokens=0), "max_tokens", ""),
    ("max_tokens: -5", lambda s: _body(s, max_tokens=-5), "max_tokens", ""),
    ("max_tokens: 10**9", lambda s: _body(s, max_tokens=10**9), "max_tokens", "limit"),
    ('max_tokens: "10"', lambda s: _body(s, max_tokens="10"), "max_tokens", "integer"),
    ("seed: 2**70", lambda s: _body(s, seed=2**70), "seed", ""),
    ("seed: 1.5", lambda s: _body(s, seed=1.5), "seed", "integer"),
    ("temperature: -1", lambda s: _body(s, temperature=-1), "temperature", ""),
    ("temperature: NaN", lambda s: _raw(s, "temperature", "NaN"), "temperature", "finite"),
    ("temperature: -Infinity", lambda s: _raw(s, "temperature", "-Infinity"), "temperature", "finite"),
    ("temperature: 100", lambda s: _body(s, temperature=100), "temperature", ""),
    ("top_p: -1", lambda s: _body(s, top_p=-1), "top_p", ""),
    ("top_p: 5", lambda s: _body(s, top_p=5), "top_p", ""),
    ("top_p: NaN", lambda s: _raw(s, "top_p", "NaN"), "top_p", "finite"),
    ("top_k: -3", lambda s: _body(s, top_k=-3), "top_k", ""),
    ("top_k: 2.5", lambda s: _body(s, top_k=2.5), "top_k", "integer"),
    ("stream: 1", lambda s: _body(s, stream=1), "stream", "boolean"),
    ("stop: 7 sequences", lambda s: _body(s, stop=list("abcdefg")), "stop", "at most"),
    ('stop: [""]', lambda s: _body(s, stop=[""]), "stop", "empty"),
    ("top_logprobs: 50", lambda s: _body(s, logprobs=True, top_logprobs=50), "top_logprobs", ""),
    ("top_logprobs without logprobs", lambda s: _body(s, top_logprobs=2), "top_logprobs", "logprobs"),
    ("stream_options without stream", lambda s: _body(s, stream_options={"include_usage": True}), "stream_options", ""),
    ("unknown parameter", lambda s: _body(s, frobnicate=True), "frobnicate", "unrecognized"),
    ("messages missing", lambda s: {"model": s.model}, "messages", "required"),
    ("messages empty", lambda s: _body(s, messages=[]), "messages", ""),
    ("messages: a string", lambda s: _body(s, messages="hi"), "messages", "list"),
    ("message role robot", lambda s: _body(s, messages=[{"role": "robot", "content": "x"}]), "messages[0].role", ""),
    ("content: a number", lambda s: _body(s, messages=[{"role": "user", "content": 5}]), "messages[0].content", ""),
    (
        "text part without text",
        lambda s: _body(s, messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages[0].content[0].text",
        "",
    ),
    (
        "input_audio.data not a string",
        lambda s: _body(
            s, messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": 5}}]}]
        ),
        "messages[0].content[0].input_audio.data",
        "",
    ),
    (
        "audio_url part (file path)",
        lambda s: _body(
            s,
            messages=[{"role": "user", "content": [{"type": "audio_url", "audio_url": {"url": "file:///etc/passwd"}}]}],
        ),
        "messages[0].content[0].type",
        "",
    ),
    (
        "two audio clips",
        lambda s: _body(
            s, messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA"}}] * 2}]
        ),
        "messages[0].content[1]",
        "one audio",
    ),
    ("no audio", lambda s: _body(s, messages=[{"role": "user", "content": "hi"}]), "messages", "no input_audio"),
    (
        "last message from the assistant",
        lambda s: _body(s, messages=_messages() + [{"role": "assistant", "content": "x"}]),
        "messages",
        "last message",
    ),
    (
        "base64 invalid",
        lambda s: _body(s, messages=_messages("@@@")),
        "messages[0].content[1].input_audio.data",
        "base64",
    ),
    (
        "base64 of text",
        lambda s: _body(s, messages=_messages(base64.b64encode(b"hello" * 99).decode())),
        "messages[0].content[1].input_audio.data",
        "not readable audio",
    ),
    (
        "WAV with zero samples",
        lambda s: _body(s, messages=_messages(_wav_b64(0.0))),
        "messages[0].content[1].input_audio.data",
        "zero-length",
    ),
    ("model missing", lambda s: {"messages": _messages()}, "model", "required"),
    ("model: 5", lambda s: _body(s, model=5), "model", "string"),
    ("tools", lambda s: _body(s, tools=[{"type": "function", "function": {"name": "f"}}]), "tools", "not supported"),
    (
        "response_format json_object",
        lambda s: _body(s, response_format={"type": "json_object"}),
        "response_format",
        "not supported",
    ),
    ("logit_bias", lambda s: _body(s, logit_bias={"1": 5}), "logit_bias", "not supported"),
]

for _name, _make, _param, _needle in MALFORMED:

    def _case(ctx, make=_make, param=_param, needle=_needle):
        srv = server()
        body = make(srv)
        r = _post(srv, raw=body) if isinstance(body, bytes) else _post(srv, body)
        expect_error(r, 400, param, needle)

    case(f"400 naming the field: {_name}")(_case)


@case("404 model_not_found for another model name")
def _(ctx):
    srv = server()
    err = expect_error(_post(srv, _body(srv, model="gpt-4o")), 404, "model")
    if err["code"] != "model_not_found":
        raise Fail(f"code {err['code']!r}")


@case("unknown route and wrong method answer OpenAI-shaped JSON")
def _(ctx):
    import httpx

    srv = server()
    expect_error(httpx.get(srv.url + "/v1/nope"), 404, None, "/v1/nope")
    expect_error(httpx.delete(srv.url + URL), 405, None)


# ---------------------------------------------------------------------------- size and memory
@case("FLAC 192 kHz x 8 ch x 290 s (0.46 MB): 413 from the header, peak RSS under 600 MB")
def _(ctx):
    srv = server()
    path = ctx.tmp() / "bomb.flac"
    with sf.SoundFile(path, "w", 192000, 8, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((192000 * 10, 8), np.int16)
        for _ in range(29):
            f.write(block)
    data = base64.b64encode(path.read_bytes()).decode()
    t0 = time.perf_counter()
    expect_error(
        _post(srv, _body(srv, messages=_messages(data, fmt="flac"))),
        413,
        "messages[0].content[1].input_audio.data",
        "decoded samples",
    )
    dt = time.perf_counter() - t0
    peak = srv.peak_rss_mb()
    if peak > 600:
        raise Fail(f"peak RSS {peak:.0f} MB")
    if dt > 2:
        raise Fail(f"refusal took {dt:.1f} s")


@case("5 min of 48 kHz stereo (the largest allowed): answered, /health under 0.5 s throughout, RSS under 600 MB")
def _(ctx):
    import httpx

    srv = server()
    data = _wav_b64(300, 48000, 2, fmt="FLAC")
    done: list = []
    th = threading.Thread(target=lambda: done.append(_post(srv, _body(srv, messages=_messages(data, fmt="flac")))))
    th.start()
    slowest = 0.0
    with httpx.Client(timeout=10) as client:  # one connection: the time measured is the server's
        while th.is_alive():
            t0 = time.perf_counter()
            client.get(srv.url + "/health")
            slowest = max(slowest, time.perf_counter() - t0)
            time.sleep(0.05)
    if done[0].status_code != 200:
        raise Fail(f"HTTP {done[0].status_code}: {done[0].text[:200]}")
    if slowest > 0.5:  # decoding takes 3 s; on the event loop /health would wait for all of it
        raise Fail(f"/health took {slowest:.2f} s while the clip was decoded")
    if srv.peak_rss_mb() > 600:
        raise Fail(f"peak RSS {srv.peak_rss_mb():.0f} MB")


@case("audio over --max-audio-seconds: 413 naming the field")
def _(ctx):
    srv = server()
    expect_error(
        _post(srv, _body(srv, messages=_messages(_wav_b64(301, 8000, silent=True)))),
        413,
        "messages[0].content[1].input_audio.data",
        "over the limit",
    )


@case("Content-Length over the limit: 413 before the body is read")
def _(ctx):
    srv = server()
    expect_error(_post(srv, raw=b"x" * (26 * 2**20)), 413, None, "limit")


@case("chunked 100 MB body (no Content-Length): 413 after at most limit + socket buffers")
def _(ctx):
    srv = server()
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    frame = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    sent, reply = 0, b""
    try:
        while sent < 100 * 2**20 and not select.select([s], [], [], 0)[0]:
            s.sendall(frame)
            sent += 65536
    except OSError:
        pass
    s.settimeout(10)
    try:
        reply = s.recv(4096)
    except OSError:
        pass
    s.close()
    if not reply.startswith(b"HTTP/1.1 413"):
        raise Fail(f"reply {reply[:60]!r}")
    if sent > 25 * 2**20 + 16 * 2**20:
        raise Fail(f"{sent / 2**20:.0f} MB were read before the refusal")


# ---------------------------------------------------------------------------- who may call
@case("foreign Host header (DNS rebinding): 403")
def _(ctx):
    srv = server()
    expect_error(_post(srv, _body(srv), headers={"Host": "attacker.example"}), 403, None, "Host")


@case("cross-origin text/plain POST (any web page): 403")
def _(ctx):
    srv = server()
    expect_error(
        _post(srv, _body(srv), headers={"Origin": "https://attacker.example", "content-type": "text/plain"}),
        403,
        None,
        "cross-origin",
    )


@case("Origin: null (sandboxed page): 403")
def _(ctx):
    srv = server()
    expect_error(_post(srv, _body(srv), headers={"Origin": "null"}), 403)


@case("same-origin page request: answered")
def _(ctx):
    srv = server()
    r = _post(srv, _body(srv), headers={"Origin": srv.url})
    if r.status_code != 200:
        raise Fail(f"HTTP {r.status_code}: {r.text[:200]}")


@case("--allow-host and --allow-origin widen the checks")
def _(ctx):
    srv = server("--allow-host", "box.lan", "--allow-origin", "https://app.example")
    for h in ({"Host": "box.lan"}, {"Origin": "https://app.example"}):
        r = _post(srv, _body(srv), headers=h)
        if r.status_code != 200:
            raise Fail(f"{h}: HTTP {r.status_code}")
    expect_error(_post(srv, _body(srv), headers={"Host": "other.lan"}), 403)


@case("--api-key: no key and a wrong key get 401 JSON, the key works")
def _(ctx):
    srv = server("--api-key", "k3y")
    expect_error(_post(srv, _body(srv)), 401)
    expect_error(_post(srv, _body(srv), headers={"Authorization": "Bearer k3"}), 401)
    r = _post(srv, _body(srv), headers={"Authorization": "Bearer k3y"})
    if r.status_code != 200:
        raise Fail(f"HTTP {r.status_code}")


# ---------------------------------------------------------------------------- load and shutdown
def _leave_then_stay(queue: int, leavers: int, stayers: int) -> None:
    """8 long requests keep the one-row worker busy; `leavers` clients queue and leave after 50 ms;
    then `stayers` clients arrive. Their slots exist only if the leavers' were freed at once."""
    import httpx

    srv = server("--queue-size", str(queue), "--max-batch", "1", "--batch-window-ms", "0")
    long = _body(srv, messages=_messages(_example_b64(), fmt="flac"), max_tokens=512, temperature=2.0, seed=3)
    clip = _wav_b64(2.0)
    with ThreadPoolExecutor(8 + max(leavers, stayers)) as ex:
        blockers = [ex.submit(_post, srv, long, None, None, 300) for _ in range(8)]
        deadline = time.time() + 30
        while httpx.get(srv.url + "/health").json()["queued"] < 6 and time.time() < deadline:
            time.sleep(0.01)

        def leave(_):
            try:
                _post(srv, _body(srv, messages=_messages(clip)), timeout=0.05)
            except httpx.TimeoutException:
                pass

        list(ex.map(leave, range(leavers)))
        time.sleep(0.3)
        codes = list(
            ex.map(lambda _: _post(srv, _body(srv, messages=_messages(clip)), timeout=300).status_code, range(stayers))
        )
        for b in blockers:
            b.result()
    if any(c != 200 for c in codes):
        raise Fail(f"{sum(c != 200 for c in codes)} of {stayers} staying clients got {sorted(set(codes))}")


@case("clients that leave free their queue slots at once (queue 16: 8 busy, 8 leave, 8 arrive)")
def _(ctx):
    _leave_then_stay(16, 8, 8)


@case("64 clients, 32 of them leaving: no 503 among the 32 that stay (queue 40, 8 busy)")
def _(ctx):
    _leave_then_stay(40, 32, 32)


@case("SIGTERM while 40 requests run: they finish, 30 new ones get 503 (not connection refused)")
def _(ctx):
    import httpx

    srv = Serve("--max-batch", "1", "--batch-window-ms", "0")
    try:
        body = _body(srv, messages=_messages(_example_b64(), fmt="flac"), max_tokens=64)
        first: list = []
        with ThreadPoolExecutor(40) as ex:
            futures = [ex.submit(_post, srv, body, None, None, 120) for _ in range(40)]
            while httpx.get(srv.url + "/health").json()["batches_run"] < 2:
                time.sleep(0.02)
            srv.proc.send_signal(signal.SIGTERM)
            late = []
            for _ in range(30):
                try:
                    late.append(_post(srv, body, timeout=10).status_code)
                except httpx.TransportError as err:
                    late.append(type(err).__name__)
            first = [f.result().status_code for f in futures]
        err = srv.proc.communicate(timeout=60)[1]
        if first != [200] * 40:
            raise Fail(f"in-flight requests: {first}")
        if late != [503] * 30:
            raise Fail(f"new requests: {late}")
        if "Traceback" in err:
            raise Fail(err.strip().splitlines()[-1])
    finally:
        srv.stop()


# ---------------------------------------------------------------------------- the API tells the truth
def _ask(srv, **kw):
    return _post(srv, _body(srv, messages=_messages(_example_b64(), fmt="flac"), **kw)).json()


@case("usage counts prompt and completion tokens")
def _(ctx):
    u = _ask(server(), max_tokens=64)["usage"]
    if not (
        u["prompt_tokens"] > 0
        and u["completion_tokens"] > 0
        and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    ):
        raise Fail(f"usage {u}")


@case("stream_options.include_usage: a last chunk with usage")
def _(ctx):
    import httpx

    srv = server()
    body = _body(
        srv, messages=_messages(_example_b64(), fmt="flac"), stream=True, stream_options={"include_usage": True}
    )
    lines = [l for l in httpx.post(srv.url + URL, json=body, timeout=60).text.splitlines() if l.startswith("data: {")]
    last = json.loads(lines[-1][6:])
    if last["choices"] != [] or not last.get("usage", {}).get("completion_tokens"):
        raise Fail(f"last chunk {lines[-1][:200]}")


@case("finish_reason length when max_tokens cuts, stop otherwise")
def _(ctx):
    srv = server()
    cut, whole = _ask(srv, max_tokens=1), _ask(srv, max_tokens=64)
    got = (cut["choices"][0]["finish_reason"], whole["choices"][0]["finish_reason"])
    if got != ("length", "stop"):
        raise Fail(f"finish reasons {got}")


@case("stop=['piano'] cuts 'a piano' to 'a '")
def _(ctx):
    srv = server()
    text = _ask(srv, stop=["piano"])["choices"][0]["message"]["content"]
    whole = _ask(srv)["choices"][0]["message"]["content"]
    if "piano" not in whole or text != whole[: whole.index("piano")]:
        raise Fail(f"{text!r} from {whole!r}")


@case("logprobs with top_logprobs")
def _(ctx):
    c = _ask(server(), logprobs=True, top_logprobs=2)["choices"][0]
    lp = (c.get("logprobs") or {}).get("content") or []
    if not lp or any(len(t["top_logprobs"]) != 2 or t["logprob"] > 0 for t in lp):
        raise Fail(f"logprobs {str(c.get('logprobs'))[:200]}")


@case("system message becomes the task description (more prompt tokens)")
def _(ctx):
    srv = server()
    plain = _ask(srv)["usage"]["prompt_tokens"]
    body = _body(
        srv,
        messages=[
            {"role": "system", "content": "The task is to name the instrument played."},
            *_messages(_example_b64(), fmt="flac"),
        ],
    )
    r = _post(srv, body).json()
    if r.get("usage", {}).get("prompt_tokens", 0) <= plain:
        raise Fail(f"{r.get('usage')} vs {plain} without it")


@case("n=3 with a seed: 3 choices, each as its seed alone")
def _(ctx):
    srv = server()
    r = _ask(srv, n=3, temperature=1.5, seed=7)
    alone = [_ask(srv, temperature=1.5, seed=7 + i)["choices"][0]["message"]["content"] for i in range(3)]
    got = [c["message"]["content"] for c in r["choices"]]
    if got != alone:
        raise Fail(f"{got} vs alone {alone}")


@case("seeded sampling: the same text batched with 7 others or alone")
def _(ctx):
    srv = server()
    alone = _ask(srv, temperature=1.3, seed=99)["choices"][0]["message"]["content"]
    gate = threading.Barrier(8)

    def one(i):
        gate.wait()
        if i == 0:
            return _ask(srv, temperature=1.3, seed=99)["choices"][0]["message"]["content"]
        return _post(srv, _body(srv, messages=_messages(_wav_b64(1 + i * 0.2)), temperature=0.9, seed=i)).status_code

    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(one, range(8)))
    if got[0] != alone:
        raise Fail(f"{got[0]!r} batched, {alone!r} alone")


@case("GET /v1/models/{id}: the model, and 404 model_not_found for another")
def _(ctx):
    import httpx

    srv = server()
    if httpx.get(f"{srv.url}/v1/models/{srv.model}").json().get("id") != srv.model:
        raise Fail("the served model is not found")
    err = expect_error(httpx.get(f"{srv.url}/v1/models/gpt-4o"), 404)
    if err["code"] != "model_not_found":
        raise Fail(f"code {err['code']!r}")


@case("a prompt longer than the model's context: 400 context_length_exceeded")
def _(ctx):
    srv = server()
    err = expect_error(_post(srv, _body(srv, messages=_messages(text="piano " * 5000))), 400, "messages")
    if err["code"] != "context_length_exceeded":
        raise Fail(f"code {err['code']!r}")
