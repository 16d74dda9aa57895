"""Clip embeddings for nearest-neighbour search, cached on disk so a rerun never recomputes them.

An embedder maps a waveform to one vector: the mean of the audio encoder's tokens over all windows,
L2-normalised (so L2 distance ranks like cosine similarity). It can come from an audioflamingo model
directory (its own encoder) or a Hugging Face CLAP directory (its pooled, projected embedding, as
the paper's LAION-CLAP neighbours).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from audioflamingo.audio.encoders import AudioEncoder
from audioflamingo.audio.windows import make_windows
from audioflamingo.config import WindowConfig


class ClipEmbedder:
    def __init__(self, encoder: AudioEncoder, window: WindowConfig, name: str | None = None):
        self.encoder, self.window = encoder.eval(), window
        self.name = name or f"encoder:{weights_fingerprint(encoder)}"

    @classmethod
    def from_directory(cls, path: str | Path) -> "ClipEmbedder":
        from audioflamingo.audio.encoders import HFClapEncoder, build_encoder
        from audioflamingo.errors import ModelLoadError
        from audioflamingo.files import check_safetensors, read_json
        from audioflamingo.model.checks import load_config

        d = Path(path)
        cfg_file = d / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{cfg_file}: missing (expected an audioflamingo model or a CLAP directory)")
        raw = read_json(cfg_file)
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{cfg_file}: must be a JSON object")
        if raw.get("kind") == "afclap":
            from audioflamingo.clap.model import AFClap

            clap = AFClap.from_pretrained(d)
            return cls(_ClapWindows(clap), clap.cfg.window)
        if "encoder" in raw and "window" in raw:  # an audioflamingo model directory
            from safetensors import safe_open

            cfg = load_config(cfg_file)  # typed checks: one line naming the file
            enc = build_encoder(cfg.encoder, cfg.window)
            spec = (cfg.base_parts or {}).get("encoder")
            if spec is not None:  # a pretrained encoder (v2): its weights are in the base-part cache, not here
                from audioflamingo.base_parts import load_part_state

                sd = load_part_state(spec["name"], spec["sha256"])
                adapt = getattr(enc, "adapt_base_state", None)
                sd = adapt(sd) if adapt else sd
            else:
                check_safetensors(d / "model.safetensors")
                with safe_open(str(d / "model.safetensors"), "pt") as f:
                    sd = {k[len("encoder.") :]: f.get_tensor(k) for k in f.keys() if k.startswith("encoder.")}
            enc.load_state_dict(sd, strict=True)
            return cls(enc, cfg.window)
        ecfg = HFClapEncoder.config_from_directory(d, "pooled")
        fe = ecfg.feature_extractor or {}
        win = WindowConfig(
            sample_rate=int(fe.get("sampling_rate", 48000)),
            window_seconds=float(fe.get("max_length_s", 10)),
            hop_seconds=float(fe.get("max_length_s", 10)),
            max_windows=1,
        )
        enc = build_encoder(ecfg, win)
        enc.load_directory_weights(d)
        return cls(enc, win)

    @property
    def dim(self) -> int:
        return int(self.embed(np.zeros(self.window.window_samples, np.float32)).shape[0])

    @torch.no_grad()
    def embed(self, wave: np.ndarray, name: str = "<audio>") -> np.ndarray:
        """name: the clip's file, for the warning about audio longer than the window budget."""
        frames = torch.from_numpy(make_windows(wave, self.window, name).frames)
        feats = self.encoder(frames)  # (W, T, D)
        v = feats.float().mean(dim=(0, 1))
        return torch.nn.functional.normalize(v, dim=0).numpy()


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A hash of the weights themselves: the same encoder gives the same name wherever it is saved."""
    h = hashlib.sha1()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def clip_key(path: Path, offset: float, duration: float | None) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{offset}:{duration}".encode()).hexdigest()


class EmbeddingCache:
    """Append-only store of (key -> vector) in one folder: keys.json + vectors.npy."""

    def __init__(self, directory: str | Path, embedder_name: str):
        self.dir = Path(directory) / hashlib.sha1(embedder_name.encode()).hexdigest()[:12]
        self.keys: dict[str, int] = {}
        self.vectors = np.zeros((0, 0), np.float32)
        if (self.dir / "keys.json").is_file():
            self.keys = json.loads((self.dir / "keys.json").read_text())
            self.vectors = np.load(self.dir / "vectors.npy")
        self.computed = 0

    def get(self, key: str) -> np.ndarray | None:
        i = self.keys.get(key)
        return None if i is None else self.vectors[i]

    def add(self, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        new = np.stack(list(items.values())).astype(np.float32)
        base = len(self.keys)
        self.vectors = new if self.vectors.size == 0 else np.concatenate([self.vectors, new])
        for n, k in enumerate(items):
            self.keys[k] = base + n
        self.computed += len(items)

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        np.save(self.dir / "vectors.tmp.npy", self.vectors)
        (self.dir / "keys.tmp.json").write_text(json.dumps(self.keys))
        (self.dir / "vectors.tmp.npy").replace(self.dir / "vectors.npy")
        (self.dir / "keys.tmp.json").replace(self.dir / "keys.json")


class _ClapWindows(torch.nn.Module):
    """AF-CLAP's projected window embeddings, shaped like encoder output: (W, 1, proj)."""

    def __init__(self, clap):
        super().__init__()
        self.clap = clap

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.clap.window_features(frames)[:, None, :]
