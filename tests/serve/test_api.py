"""The OpenAI-compatible server on loopback, driven by the official `openai` client and httpx."""

import base64
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
import httpx  # noqa: E402

from tests.serve.helpers import Server, b64, msg  # noqa: E402

NAME = "audioflamingo"


@pytest.fixture(scope="module")
def server(default_pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    srv = Server(
        create_app(
            default_pipe,
            ServeConfig(model_name="tiny", max_batch=8, window_ms=50, max_audio_seconds=5, max_body_bytes=2 * 2**20),
        )
    )
    yield srv
    srv.stop()


def test_official_client_chat_stream_and_models(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == ["tiny"]
    r = client.chat.completions.create(model="tiny", messages=msg(), max_tokens=40)
    text = r.choices[0].message.content
    assert text and r.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model="tiny", messages=msg(), max_tokens=40, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == text  # greedy: the stream spells out the same answer


def test_multi_turn_uses_history(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    msgs = msg("What is it?") + [{"role": "assistant", "content": "a tone"}, {"role": "user", "content": "How long?"}]
    r = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=4)
    assert r.choices[0].message.content is not None


def test_concurrent_requests_are_batched_and_equal_sequential(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    audios = [b64(0.5 + 0.25 * i, 300 + 100 * i) for i in range(6)]
    ask = lambda a: (  # noqa: E731
        client.chat.completions.create(
            model="tiny",
            messages=msg(audio=a),
            max_tokens=8,
        )
        .choices[0]
        .message.content
    )
    sequential = [ask(a) for a in audios]
    before = httpx.get(server.url + "/health").json()["largest_batch"]
    with ThreadPoolExecutor(6) as ex:
        together = list(ex.map(ask, audios))
    health = httpx.get(server.url + "/health").json()
    assert together == sequential
    assert max(health["largest_batch"], before) > 1


@pytest.mark.parametrize(
    "case,status,needle",
    [
        ("badb64", 400, "base64"),
        ("notaudio", 400, "not readable audio"),
        ("long", 413, "over the limit"),
        ("noaudio", 400, "no input_audio"),
        ("url", 400, "not accepted"),
        ("json", 400, "not valid JSON"),
        ("big", 413, "over the limit"),
        ("tokens", 400, "max_tokens"),
        ("role", 400, "role"),
    ],
)
def test_bad_requests_get_clear_4xx(server, case, status, needle):
    body = {"model": "tiny", "messages": msg(), "max_tokens": 4}
    if case == "badb64":
        body["messages"][0]["content"][1]["input_audio"]["data"] = "@@not-base64@@"
    elif case == "notaudio":
        body["messages"][0]["content"][1]["input_audio"]["data"] = base64.b64encode(b"hello" * 100).decode()
    elif case == "long":
        body["messages"] = msg(audio=b64(seconds=8.0, sr=8000))
    elif case == "noaudio":
        body["messages"] = [{"role": "user", "content": "hi"}]
    elif case == "url":
        body["messages"][0]["content"][1] = {"type": "audio_url", "audio_url": {"url": "file:///etc/passwd"}}
    elif case == "tokens":
        body["max_tokens"] = 100000
    elif case == "role":
        body["messages"][0]["role"] = "robot"
    if case == "json":
        r = httpx.post(
            server.url + "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
        )
    elif case == "big":
        r = httpx.post(
            server.url + "/v1/chat/completions",
            content=b"x" * (3 * 2**20),
            headers={"content-type": "application/json"},
        )
    else:
        r = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_api_key_and_full_queue(default_pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    srv = Server(create_app(default_pipe, ServeConfig(api_key="s3cret", max_batch=1, window_ms=0, queue_size=1)))
    try:
        body = {"model": NAME, "messages": msg(), "max_tokens": 64}
        r = httpx.post(srv.url + "/v1/chat/completions", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert (
            httpx.post(
                srv.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cre"}
            ).status_code
            == 401
        )
        hdr = {"Authorization": "Bearer s3cret"}
        assert httpx.get(srv.url + "/health").status_code == 200  # health needs no key
        with ThreadPoolExecutor(12) as ex:
            rs = list(
                ex.map(
                    lambda _: httpx.post(srv.url + "/v1/chat/completions", json=body, headers=hdr, timeout=60),
                    range(12),
                )
            )
        codes = [r.status_code for r in rs]
        assert set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
        busy = next(r for r in rs if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "queue is full" in busy.json()["error"]["message"]
    finally:
        srv.stop()


def test_api_key_is_compared_in_constant_time(default_pipe, monkeypatch):
    import hmac

    from audioflamingo.serve import guard
    from audioflamingo.serve.app import ServeConfig, create_app

    calls, real = [], hmac.compare_digest
    monkeypatch.setattr(guard.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    srv = Server(create_app(default_pipe, ServeConfig(api_key="s3cret")))
    try:
        assert httpx.get(srv.url + "/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(srv.url + "/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert calls == [(b"Bearer nope", b"Bearer s3cret"), (b"Bearer s3cret", b"Bearer s3cret")]
    finally:
        srv.stop()


def test_graceful_shutdown_finishes_in_flight_and_answers_503(default_pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    app = create_app(default_pipe, ServeConfig(max_batch=1, window_ms=0))
    batcher_generate = []
    srv = Server(app, draining=True)
    real = app.state.batcher._generate
    app.state.batcher._generate = lambda jobs, loop: (time.sleep(2.0), real(jobs, loop))[1]  # a slow model
    batcher_generate.append(real)
    body = {"model": NAME, "messages": msg(), "max_tokens": 20, "stream": True}
    got, started = {}, threading.Event()

    def long_request():
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=60) as r:
            got["status"] = r.status_code
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                started.set()
            got["lines"] = lines

    t = threading.Thread(target=long_request)
    t.start()
    assert started.wait(30)  # the role chunk came: the request is in flight, its batch is running
    srv.server.handle_exit(signal.SIGTERM, None)  # what `kill -TERM` does
    late = [httpx.post(srv.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=10) for _ in range(5)]
    assert [r.status_code for r in late] == [503] * 5  # not "connection refused"
    assert all("shutting down" in r.json()["error"]["message"] and r.headers["retry-after"] for r in late)
    t.join(60)
    srv.thread.join(60)
    assert not srv.thread.is_alive()  # it exits once the in-flight request is done
    assert got["status"] == 200 and [l for l in got["lines"] if l][-1] == "data: [DONE]"  # in-flight stream completed


def test_client_that_disconnects_frees_its_slot_at_once(default_pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    app = create_app(default_pipe, ServeConfig(model_name=NAME, max_batch=1, window_ms=0, queue_size=1))
    srv = Server(app)
    release = threading.Event()
    real = app.state.batcher._generate
    app.state.batcher._generate = lambda jobs, loop: (release.wait(30), real(jobs, loop))[1]  # a model held still
    try:
        body = {"model": NAME, "messages": msg(), "max_tokens": 5}
        post = lambda timeout: httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=timeout)  # noqa: E731
        running = threading.Thread(target=post, args=(60,))
        running.start()
        deadline = time.time() + 10
        while httpx.get(srv.url + "/health").json()["in_flight"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        with pytest.raises(httpx.TimeoutException):  # waits in the one queue slot, then its client leaves
            post(0.5)
        time.sleep(0.3)
        health = httpx.get(srv.url + "/health").json()
        assert health["queued"] == 0 and health["dropped"] == 1, health  # the slot is free before any batch ran
        third = []
        th = threading.Thread(target=lambda: third.append(post(60)))
        th.start()
        time.sleep(0.3)
        release.set()
        th.join(60)
        running.join(60)
        assert third[0].status_code == 200, third[0].text  # not 503 "queue is full"
    finally:
        release.set()
        srv.stop()


def test_streaming_client_that_leaves_frees_its_slot(default_pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    app = create_app(default_pipe, ServeConfig(model_name=NAME, max_batch=1, window_ms=0, queue_size=1))
    srv = Server(app)
    release = threading.Event()
    real = app.state.batcher._generate
    app.state.batcher._generate = lambda jobs, loop: (release.wait(30), real(jobs, loop))[1]
    try:
        body = {"model": NAME, "messages": msg(), "max_tokens": 5, "stream": True}
        running = threading.Thread(target=lambda: httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=60))
        running.start()
        deadline = time.time() + 10
        while httpx.get(srv.url + "/health").json()["in_flight"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=30) as r:
            assert r.status_code == 200
            next(r.iter_lines())  # the role chunk: the request is queued; then the client leaves
        deadline = time.time() + 5
        while httpx.get(srv.url + "/health").json()["queued"] and time.time() < deadline:
            time.sleep(0.05)
        health = httpx.get(srv.url + "/health").json()
        assert health["queued"] == 0 and health["dropped"] == 1, health
    finally:
        release.set()
        srv.stop()
