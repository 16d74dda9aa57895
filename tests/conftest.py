import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(2)


def tiny_lm(family: str, vocab: int):
    """A tiny random HF causal LM of the given family (eager attention for exact comparisons)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        OPTConfig,
        OPTForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(0)
    if family == "opt":
        cfg = OPTConfig(
            vocab_size=vocab,
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=512,
            word_embed_proj_dim=32,
            pad_token_id=vocab - 1,
            bos_token_id=0,
            eos_token_id=1,
        )
        cls = OPTForCausalLM
    elif family == "qwen2":
        cfg = Qwen2Config(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        )
        cls = Qwen2ForCausalLM
    elif family == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        )
        cls = LlamaForCausalLM
    elif family == "gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=3, n_head=4, n_positions=512)
        cls = GPT2LMHeadModel
    else:
        raise ValueError(family)
    cfg._attn_implementation = "eager"
    return cls(cfg).eval()


FAMILIES = ["opt", "qwen2", "llama", "gpt2"]


def make_model(family: str = "qwen2", gates: float | None = 0.7, every: int = 1, seed: int = 0):
    """A tiny AudioFlamingo around a tiny LM of `family`; gates set non-zero so audio matters."""
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.presets import preset_config
    from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer

    cfg, _ = preset_config("tiny")
    cfg.xattn.every_n_layers = every
    tok = byte_level_tokenizer()
    special = add_special_tokens(tok)
    lm = tiny_lm(family, len(tok))
    torch.manual_seed(seed)
    model = AudioFlamingo(cfg, lm, special).eval()
    if gates is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("_gate"):
                    p.fill_(gates)
    return model, tok


@pytest.fixture(scope="session")
def tiny():
    return make_model("qwen2")


def noise(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * (200 + 100 * seed) * t) + 0.2 * rng.standard_normal(len(t))).astype(np.float32)
