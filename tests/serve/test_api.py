"""The OpenAI-compatible server on loopback, driven by the official `openai` client and httpx."""
import base64
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
import httpx  # noqa: E402


def _b64(seconds=1.0, f=440.0, fmt="WAV", sr=16000):
    t = np.arange(int(sr * seconds)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.4 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def _msg(text="What do you hear?", audio=None):
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "input_audio", "input_audio": {"data": audio or _b64(), "format": "wav"}}]}]


class Server:
    def __init__(self, app):
        import uvicorn

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def pipe():
    from audioflamingo.presets import build
    from audioflamingo.tasks import AudioFlamingoPipeline

    model, tok = build("tiny", seed=1)
    return AudioFlamingoPipeline(model, tok)


@pytest.fixture(scope="module")
def server(pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    srv = Server(create_app(pipe, ServeConfig(model_name="tiny", max_batch=8, window_ms=50, max_audio_seconds=5,
                                              max_body_bytes=2 * 2**20)))
    yield srv
    srv.stop()


def test_official_client_chat_stream_and_models(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == ["tiny"]
    r = client.chat.completions.create(model="tiny", messages=_msg(), max_tokens=6)
    text = r.choices[0].message.content
    assert isinstance(text, str) and r.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model="tiny", messages=_msg(), max_tokens=6, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == text  # greedy: the stream spells out the same answer


def test_multi_turn_uses_history(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    msgs = _msg("What is it?") + [{"role": "assistant", "content": "a tone"}, {"role": "user", "content": "How long?"}]
    r = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=4)
    assert r.choices[0].message.content is not None


def test_concurrent_requests_are_batched_and_equal_sequential(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    audios = [_b64(0.5 + 0.25 * i, 300 + 100 * i) for i in range(6)]
    ask = lambda a: client.chat.completions.create(model="tiny", messages=_msg(audio=a), max_tokens=8  # noqa: E731
                                                   ).choices[0].message.content
    sequential = [ask(a) for a in audios]
    before = httpx.get(server.url + "/health").json()["largest_batch"]
    with ThreadPoolExecutor(6) as ex:
        together = list(ex.map(ask, audios))
    health = httpx.get(server.url + "/health").json()
    assert together == sequential
    assert max(health["largest_batch"], before) > 1


@pytest.mark.parametrize("case,status,needle", [
    ("badb64", 400, "base64"), ("notaudio", 400, "not readable audio"), ("long", 413, "over the limit"),
    ("noaudio", 400, "no input_audio"), ("url", 400, "not accepted"), ("json", 400, "not valid JSON"),
    ("big", 413, "over the limit"), ("tokens", 400, "max_tokens"), ("role", 400, "role"),
])
def test_bad_requests_get_clear_4xx(server, case, status, needle):
    body = {"model": "tiny", "messages": _msg(), "max_tokens": 4}
    if case == "badb64":
        body["messages"][0]["content"][1]["input_audio"]["data"] = "@@not-base64@@"
    elif case == "notaudio":
        body["messages"][0]["content"][1]["input_audio"]["data"] = base64.b64encode(b"hello" * 100).decode()
    elif case == "long":
        body["messages"] = _msg(audio=_b64(seconds=8.0, sr=8000))
    elif case == "noaudio":
        body["messages"] = [{"role": "user", "content": "hi"}]
    elif case == "url":
        body["messages"][0]["content"][1] = {"type": "audio_url", "audio_url": {"url": "file:///etc/passwd"}}
    elif case == "tokens":
        body["max_tokens"] = 100000
    elif case == "role":
        body["messages"][0]["role"] = "robot"
    if case == "json":
        r = httpx.post(server.url + "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
    elif case == "big":
        r = httpx.post(server.url + "/v1/chat/completions", content=b"x" * (3 * 2**20),
                       headers={"content-type": "application/json"})
    else:
        r = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_api_key_and_full_queue(pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    srv = Server(create_app(pipe, ServeConfig(api_key="s3cret", max_batch=1, window_ms=0, queue_size=1)))
    try:
        body = {"model": "x", "messages": _msg(), "max_tokens": 64}
        assert httpx.post(srv.url + "/v1/chat/completions", json=body).status_code == 401
        hdr = {"Authorization": "Bearer s3cret"}
        assert httpx.get(srv.url + "/health").status_code == 200  # health needs no key
        with ThreadPoolExecutor(12) as ex:
            rs = list(ex.map(lambda _: httpx.post(srv.url + "/v1/chat/completions", json=body, headers=hdr,
                                                  timeout=60), range(12)))
        codes = [r.status_code for r in rs]
        assert set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
        busy = next(r for r in rs if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "queue is full" in busy.json()["error"]["message"]
    finally:
        srv.stop()


def test_graceful_shutdown_finishes_in_flight_and_refuses_new(pipe):
    import signal

    from audioflamingo.serve.app import ServeConfig, create_app, make_server

    app = create_app(pipe, ServeConfig(max_batch=1, window_ms=0))
    srv = Server.__new__(Server)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    srv.port = s.getsockname()[1]
    s.close()
    srv.server = make_server(app, "127.0.0.1", srv.port, grace_s=30, log_level="warning")
    srv.thread = threading.Thread(target=srv.server.run, daemon=True)
    srv.thread.start()
    while not srv.server.started:
        time.sleep(0.05)
    srv.url = f"http://127.0.0.1:{srv.port}"
    body = {"model": "x", "messages": _msg(), "max_tokens": 200, "stream": True}
    got, first_chunk = {}, threading.Event()

    def long_request():
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=60) as r:
            got["status"] = r.status_code
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                first_chunk.set()
            got["lines"] = lines

    t = threading.Thread(target=long_request)
    t.start()
    assert first_chunk.wait(30)
    srv.server.handle_exit(signal.SIGTERM, None)  # what `kill -TERM` does
    try:
        late = httpx.post(srv.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=10)
        assert late.status_code == 503 and "shutting down" in late.json()["error"]["message"]
    except httpx.TransportError:
        pass  # the listening socket may already be closed, or close this connection: also "not accepted"
    t.join(60)
    srv.thread.join(60)
    assert got["status"] == 200 and [l for l in got["lines"] if l][-1] == "data: [DONE]"  # in-flight stream completed


def test_client_that_disconnects_frees_its_slot(pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    app = create_app(pipe, ServeConfig(max_batch=1, window_ms=0))
    srv = Server(app)
    batcher = app.state.batcher
    real = batcher._generate
    batcher._generate = lambda jobs, loop: (time.sleep(1.5), real(jobs, loop))[1]  # a slow model
    try:
        slow = {"model": "x", "messages": _msg(), "max_tokens": 5}
        t = threading.Thread(target=lambda: httpx.post(srv.url + "/v1/chat/completions", json=slow, timeout=120))
        t.start()
        time.sleep(0.3)  # the slow request is now generating; the next one waits in the queue
        with pytest.raises(httpx.TimeoutException):
            httpx.post(srv.url + "/v1/chat/completions", json={**slow, "max_tokens": 5}, timeout=0.3)
        t.join(120)
        time.sleep(0.5)
        health = httpx.get(srv.url + "/health").json()
        assert health["dropped"] >= 1 and health["in_flight"] == 0, health
    finally:
        srv.stop()
