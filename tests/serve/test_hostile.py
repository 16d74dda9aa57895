"""Issue 16, server: hostile and broken requests get a JSON 4xx naming the field, memory stays bounded,
the event loop stays free, and browsers on other sites cannot use the server."""

import base64
import json
import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402

from tests.serve.helpers import CliServer, Server, msg  # noqa: E402

NAME = "audioflamingo"
URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server(default_pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    srv = Server(create_app(default_pipe, ServeConfig(model_name=NAME, max_body_bytes=2 * 2**20)))
    yield srv
    srv.stop()


def _body(**over) -> bytes:
    return json.dumps({"model": NAME, "messages": msg(), "max_tokens": 4, **over}).encode()


def _raw(value: str, key: str) -> bytes:
    """A body whose `key` is spelled literally (JSON that json.dumps would not write: 1e400, NaN)."""
    return _body(**{key: 12345}).replace(f'"{key}": 12345'.encode(), f'"{key}": {value}'.encode())


MALFORMED = {
    "invalid UTF-8": (b'{"model": "\xff\xfe", "messages": []}', None, "UTF-8"),
    "nested 100000 deep": (b"[" * 100000, None, "nested too deeply"),
    'n: "two"': (_body(n="two"), "n", "integer"),
    "n: 0": (_body(n=0), "n", "greater than"),
    "max_tokens: 1e400": (_raw("1e400", "max_tokens"), "max_tokens", "integer"),
    "max_tokens: 0": (_body(max_tokens=0), "max_tokens", "greater than"),
    "max_tokens: 2.5": (_body(max_tokens=2.5), "max_tokens", "integer"),
    "seed: 2**70": (_body(seed=2**70), "seed", "less than"),
    "seed: true": (_body(seed=True), "seed", "integer"),
    "temperature: -1": (_body(temperature=-1), "temperature", "greater than"),
    "temperature: NaN": (_raw("NaN", "temperature"), "temperature", "finite"),
    "temperature: Infinity": (_raw("Infinity", "temperature"), "temperature", "finite"),
    'temperature: "hot"': (_body(temperature="hot"), "temperature", "number"),
    "top_p: -1": (_body(top_p=-1), "top_p", "greater than"),
    "top_p: 5": (_body(top_p=5), "top_p", "less than"),
    "top_k: -3": (_body(top_k=-3), "top_k", "greater than"),
    "stream: 'yes'": (_body(stream="yes"), "stream", "boolean"),
    "stop: 5": (_body(stop=5), "stop", "string"),
    "unknown field": (_body(frobnicate=1), "frobnicate", "unrecognized"),
    "messages: {}": (_body(messages={}), "messages", "list"),
    "no model": (json.dumps({"messages": msg()}).encode(), "model", "required"),
    "content part not a dict": (
        _body(messages=[{"role": "user", "content": [5]}]),
        "messages[0].content[0].type",
        "unknown content part",
    ),
    "text not a string": (
        _body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
        "messages[0].content[0].text",
        "string",
    ),
    "a JSON array": (b"[1, 2]", None, "JSON object"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request_is_a_400_naming_the_field(server, case):
    raw, param, needle = MALFORMED[case]
    r = httpx.post(server.url + URL, content=raw, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    assert needle.lower() in err["message"].lower(), err["message"]
    if param:
        assert param.rsplit(".", 1)[0] in err["message"]


def test_header_promising_too_many_samples_is_refused_before_decoding(server, bomb_flac, monkeypatch):
    import soundfile as sf

    reads = []
    real = sf.SoundFile.blocks
    monkeypatch.setattr(sf.SoundFile, "blocks", lambda self, *a, **k: reads.append(1) or real(self, *a, **k))
    data = base64.b64encode(bomb_flac.read_bytes()).decode()
    r = httpx.post(server.url + URL, content=_body(messages=msg(audio=data, fmt="flac")), timeout=60)
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert "445,440,000 samples" in err["message"] and "8 channels x 192000 Hz" in err["message"]
    assert err["param"] == "messages[0].content[1].input_audio.data"
    assert reads == []  # refused from the header: not one block decoded


def test_decoding_within_limits_is_block_by_block_and_equals_the_cli_reader(tmp_path):
    import numpy as np
    import soundfile as sf

    from audioflamingo.audio.io import load_audio
    from audioflamingo.serve.audio import decode_clip

    t = np.arange(48000 * 3) / 48000
    x = np.stack([np.sin(2 * np.pi * 300 * t), 0.5 * np.sin(2 * np.pi * 700 * t)], 1).astype(np.float32)
    sf.write(tmp_path / "a.flac", x, 48000)
    got = decode_clip(base64.b64encode((tmp_path / "a.flac").read_bytes()).decode(), "flac", 16000, 10, 10**6)
    want = load_audio(tmp_path / "a.flac", 16000)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4


def test_decoding_and_generation_run_off_the_event_loop(default_pipe, monkeypatch):
    from audioflamingo.serve import audio
    from audioflamingo.serve.app import ServeConfig, create_app

    real = audio.decode_clip
    monkeypatch.setattr(audio, "decode_clip", lambda *a, **k: (time.sleep(1.5), real(*a, **k))[1])
    app = create_app(default_pipe, ServeConfig(model_name=NAME))
    srv = Server(app)
    real_gen = app.state.batcher._generate
    app.state.batcher._generate = lambda jobs, loop: (time.sleep(1.5), real_gen(jobs, loop))[1]
    try:
        t = threading.Thread(target=lambda: httpx.post(srv.url + URL, content=_body(), timeout=60))
        t.start()
        slowest = 0.0
        with httpx.Client(timeout=5) as client:  # one connection: the time measured is the server's
            while t.is_alive():  # 3 s of decoding then generating: /health answers throughout
                t0 = time.perf_counter()
                assert client.get(srv.url + "/health").status_code == 200
                slowest = max(slowest, time.perf_counter() - t0)
                time.sleep(0.05)
        assert slowest < 0.5, slowest
    finally:
        srv.stop()


def test_chunked_body_is_refused_at_the_limit_not_read_whole(server):
    """100 MB sent chunked (no Content-Length) to a 2 MB limit: the 413 comes while it is being sent."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(
        f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    chunk = b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent, reply = 0, b""
    try:
        while sent < 100 * 2**20:
            if select.select([s], [], [], 0)[0]:
                break
            s.sendall(frame)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(10)
    try:
        while b"\r\n\r\n" not in reply:
            part = s.recv(65536)
            if not part:
                break
            reply += part
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 24 * 2**20, f"{sent / 2**20:.0f} MB sent before the refusal"  # limit + socket buffers


@pytest.mark.parametrize(
    "headers,status",
    [
        ({"Host": "evil.example"}, 403),
        ({"Host": "evil.example:8000"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "http://localhost:1"}, 403),  # another port is another origin
        ({}, 200),
        ({"Host": "localhost"}, 200),
    ],
)
def test_foreign_hosts_and_cross_origin_requests_are_refused(server, headers, status):
    h = {"content-type": "text/plain", **headers}  # a "simple" request: a browser sends it without preflight
    if "Origin" in headers and headers["Origin"].startswith("http://localhost:1"):
        h["Host"] = f"localhost:{server.port}"
    r = httpx.post(server.url + URL, content=_body(), headers=h, timeout=60)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["error"]["code"] in ("forbidden_host", "forbidden_origin")


def test_same_origin_page_and_allowed_names_are_served(default_pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    srv = Server(
        create_app(
            default_pipe,
            ServeConfig(
                model_name=NAME, allowed_hosts=["127.0.0.1", "box.lan"], allowed_origins=["https://app.example"]
            ),
        )
    )
    try:
        post = lambda **h: httpx.post(srv.url + URL, content=_body(), headers=h, timeout=60).status_code  # noqa: E731
        assert post(Origin=srv.url) == 200  # the page this server served
        assert post(Host="box.lan") == 200 and post(Host="localhost") == 403
        assert post(Origin="https://app.example") == 200 and post(Origin="https://other.example") == 403
    finally:
        srv.stop()


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read peak RSS")
def test_running_server_answers_hostile_requests_in_json_with_bounded_memory(bomb_flac):
    """`audioflamingo serve` with the default model, as a user runs it: every malformed request and the
    FLAC above get a JSON 4xx, and the process's peak RSS stays under 600 MB."""
    srv = CliServer()
    url = srv.url
    try:
        name = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        before = _rss_peak_mb(srv.proc.pid)
        data = base64.b64encode(bomb_flac.read_bytes()).decode()
        bomb = json.dumps({"model": name, "messages": msg(audio=data, fmt="flac"), "max_tokens": 4}).encode()
        answers = [httpx.post(url + URL, content=bomb, timeout=60)]
        after_bomb = _rss_peak_mb(srv.proc.pid)
        for raw, _, _ in MALFORMED.values():
            answers.append(httpx.post(url + URL, content=raw.replace(NAME.encode(), name.encode()), timeout=60))
        for r in answers:
            assert 400 <= r.status_code < 500 and r.headers["content-type"] == "application/json", r.text[:200]
            assert r.json()["error"]["message"]
        assert answers[0].status_code == 413
        assert after_bomb < 600, f"peak RSS {after_bomb:.0f} MB (before the FLAC: {before:.0f} MB)"
        assert _rss_peak_mb(srv.proc.pid) < 600
    finally:
        err = srv.stop()
    assert "Traceback" not in err, err[-2000:]


def test_base64_is_decoded_in_pieces_with_the_same_result():
    import binascii

    from audioflamingo.serve.audio import B64_CHUNK, _b64decode

    data = os.urandom(3 * B64_CHUNK // 4 * 3 + 5)  # several pieces and a padded tail
    text = base64.b64encode(data).decode()
    assert _b64decode(text) == data
    for bad in (
        text[:B64_CHUNK] + "=" + text[B64_CHUNK + 1 :],
        text[:-1],
        text[: B64_CHUNK - 1] + "!" + text[B64_CHUNK:],
    ):
        with pytest.raises((binascii.Error, ValueError)):
            _b64decode(bad)
