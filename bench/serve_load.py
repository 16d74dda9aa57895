"""Load test of `audioflamingo serve` on loopback: N concurrent clients for T seconds (bounded; it
stops by itself), against the batched server and a one-request-at-a-time server (max batch 1).

Reports throughput (requests/s), p50/p99 latency and error counts. Each client loops: POST a chat
completion with a 2-5 s clip (distinct clips, so each is encoded), wait for the answer, repeat.

    python bench/serve_load.py --clients 16 --seconds 30 --out bench/results/serve-cpu.json
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf


def clip(i: int) -> str:
    sr = 16000
    t = np.arange(int(sr * (2 + i % 4))) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.4 * np.sin(2 * np.pi * (200 + 37 * i) * t)).astype(np.float32), sr, format="WAV")
    return base64.b64encode(buf.getvalue()).decode()


def start(pipe, max_batch: int):
    from audioflamingo.serve.app import ServeConfig, create_app, make_server

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = make_server(
        create_app(pipe, ServeConfig(model_name="m", max_batch=max_batch, window_ms=10, queue_size=256, timeout_s=120)),
        "127.0.0.1",
        port,
        30,
        log_level="warning",
    )
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)
    return srv, th, f"http://127.0.0.1:{port}"


def load(url: str, clients: int, seconds: float, max_tokens: int, clips: list[str]) -> dict:
    lat, errors, lock = [], [], threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(c: int):
        n = 0
        with httpx.Client(timeout=120) as h:
            while time.perf_counter() < stop_at:
                body = {
                    "model": "m",
                    "max_tokens": max_tokens,
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "What do you hear?"},
                                {
                                    "type": "input_audio",
                                    "input_audio": {"data": clips[(c * 7 + n) % len(clips)], "format": "wav"},
                                },
                            ],
                        }
                    ],
                }
                t = time.perf_counter()
                try:
                    r = h.post(url + "/v1/chat/completions", json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError as e:
                    ok, r = False, e
                with lock:
                    (lat.append(time.perf_counter() - t) if ok else errors.append(str(getattr(r, "status_code", r))))
                n += 1

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    wall = time.perf_counter() - t0
    return {
        "requests": len(lat),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "throughput_rps": len(lat) / wall,
        "p50_s": float(np.percentile(lat, 50)) if lat else None,
        "p99_s": float(np.percentile(lat, 99)) if lat else None,
        "wall_s": wall,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: a fresh tiny model)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--out")
    args = ap.parse_args()
    from audioflamingo.tasks import AudioFlamingoPipeline

    if args.model:
        pipe = AudioFlamingoPipeline.load(args.model)
    else:
        from audioflamingo.presets import build

        pipe = AudioFlamingoPipeline(*build("tiny"))
    clips = [clip(i) for i in range(64)]
    res = {
        "model": args.model or "tiny (random init)",
        "clients": args.clients,
        "seconds": args.seconds,
        "max_tokens": args.max_tokens,
    }
    for name, mb in (("one_at_a_time", 1), ("batched", 16)):
        pipe.model.clip_cache.clear()
        srv, th, url = start(pipe, mb)
        res[name] = load(url, args.clients, args.seconds, args.max_tokens, clips)
        res[name]["largest_batch"] = httpx.get(url + "/health").json()["largest_batch"]
        srv.should_exit = True
        th.join(60)
        print(name, json.dumps(res[name]), flush=True)
    res["speedup"] = res["batched"]["throughput_rps"] / res["one_at_a_time"]["throughput_rps"]
    print(f"throughput batched / one-at-a-time: {res['speedup']:.2f}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
