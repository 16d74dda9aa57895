"""A GGUF language model to a plain transformers checkpoint (float32 safetensors + config +
tokenizer with its chat template), through transformers' own GGUF loading (needs `gguf`)."""

from __future__ import annotations

from pathlib import Path

import torch


def convert_gguf_lm(src: Path, gguf_file: str, out: Path, dtype: torch.dtype = torch.float32) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(src), gguf_file=gguf_file)
    # Dequantized values (scale * q + min per block) are exact in float32; bfloat16 would round them.
    model = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=gguf_file, dtype=dtype)
    # Drop the quantization record: what is written is a plain checkpoint that loads without gguf.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config._name_or_path = gguf_file
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    for extra in out.glob("model-*.safetensors"):  # one file is expected (small models never shard)
        raise RuntimeError(f"{out}: sharded checkpoint {extra.name}: not expected for this size")
