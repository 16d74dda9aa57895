"""Shared by the server tests: an in-process uvicorn server on a free loopback port, and clips."""

import base64
import io
import socket
import threading
import time

import numpy as np
import soundfile as sf


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def b64(seconds=1.0, f=440.0, fmt="WAV", sr=16000) -> str:
    t = np.arange(int(sr * seconds)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.4 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def example_b64() -> str:
    from audioflamingo.tasks import example_clip

    return base64.b64encode(example_clip().read_bytes()).decode()


def msg(text="What do you hear?", audio=None, fmt="wav"):
    part = {"type": "input_audio", "input_audio": {"data": audio or b64(), "format": fmt}}
    return [{"role": "user", "content": [{"type": "text", "text": text}, part]}]


class Server:
    """`app` served by uvicorn in a thread; `draining=True` uses the CLI's draining server."""

    def __init__(self, app, draining: bool = False, grace_s: float = 30):
        import uvicorn

        from audioflamingo.serve.app import make_server

        self.port = free_port()
        self.server = (
            make_server(app, "127.0.0.1", self.port, grace_s, log_level="warning")
            if draining
            else uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


class CliServer:
    """`python -m audioflamingo serve ARGS` (the bundled default model) on a free loopback port."""

    def __init__(self, *args: str):
        import os
        import subprocess
        import sys
        from pathlib import Path

        import httpx

        self.port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "audioflamingo", "serve", "--port", str(self.port), *args],
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
                    return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError(f"serve did not start: {self.stop()[-2000:]}")

    def stop(self) -> str:
        """Its stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.communicate(timeout=30)[1]
