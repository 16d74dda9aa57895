"""fp16 weights for the language model's batch-1 decode on CPU, on fbgemm's fp16-weight linear.

A decode step reads every weight of the LM once, so on CPU it runs at the speed weights stream
from memory. fbgemm (in every x86 torch build) stores a linear layer's weights as fp16 in its own
packed layout and multiplies in fp32 (`torch.ops.quantized.linear_prepack_fp16` /
`linear_dynamic_fp16`): half the bytes of fp32 and, on the 2-core EPYC of docs/BENCHMARKS.md, a
batch-1 product several times faster than the fp32 column-major GEMV of `lite.pack_columns`
(bench/fp16_weights.py). Unlike int8 "dynamic" quantization nothing is done to the activations,
so each row's result does not depend on the other rows of a batch: batched output stays equal to
one-by-one output. The cost is fp16 rounding of the weights (relative error <= 2^-11).

Only the LM's own linear layers (attention q/k/v and output, MLP, output head) are stored this
way; the embedding and the trained audio layers keep their dtype. A model opts in through its
config (`cpu_lm_weights: "float16"`), set where its outputs were checked against fp32;
`AUDIOFLAMINGO_CPU_LM_WEIGHTS=float32|float16` overrides the config. The ops are torch's, outside
its documented Python API: tests/model/test_fp16_weights.py pins them and fails loudly if they
move.
"""

from __future__ import annotations

import functools
import os

import torch

CPU_LM_WEIGHTS_ENV = "AUDIOFLAMINGO_CPU_LM_WEIGHTS"
CHOICES = ("float32", "float16")


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Whether this torch build has fbgemm's fp16-weight linear (x86 builds do; ARM ones may not)."""
    try:
        packed = torch.ops.quantized.linear_prepack_fp16(torch.ones(2, 2), None)
        torch.ops.quantized.linear_dynamic_fp16(torch.ones(1, 2), packed)
    except (AttributeError, RuntimeError):
        return False
    return True


def wanted(config_value: str) -> str:
    """The setting in force: the environment variable if set, else the model config's value."""
    value = os.environ.get(CPU_LM_WEIGHTS_ENV) or config_value
    if value not in CHOICES:
        raise ValueError(f"{CPU_LM_WEIGHTS_ENV} must be float32 or float16, not {value!r}")
    return value


class Fp16Linear:
    """`F.linear(x, weight, bias)` with the weights held as fbgemm fp16. Not a module: it is a
    derived copy, rebuilt from the module's fp32 weights, never saved or trained."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        w = weight.detach().float().contiguous()
        b = None if bias is None else bias.detach().float().contiguous()
        self.packed = torch.ops.quantized.linear_prepack_fp16(w, b)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic_fp16(x, self.packed)


def applicable(params: list[torch.Tensor]) -> bool:
    """fp16 packing applies to fp32 weights on CPU only (GPUs and bf16 models keep their dtype)."""
    return bool(params) and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params)


def attach(lm, on: bool) -> bool:
    """Give a `lite.LiteCausalLM` fp16 copies of its linear layers (on) or drop them (off).
    Returns whether they are in use: only for fp32 weights on CPU, with fbgemm present."""
    on = on and available() and applicable(list(lm.parameters()))
    for layer in lm.model.layers:
        a, m = layer.self_attn, layer.mlp
        if not on:
            a.fp16 = m.fp16 = None
            continue
        projs = (a.q_proj, a.k_proj, a.v_proj)
        qkv = torch.cat([p.weight.detach() for p in projs])
        bias = torch.cat([p.bias.detach() for p in projs]) if a.q_proj.bias is not None else None
        a.fp16 = (Fp16Linear(qkv, bias), Fp16Linear(a.o_proj.weight, a.o_proj.bias))
        gate_up = torch.cat([m.gate_proj.weight.detach(), m.up_proj.weight.detach()])
        m.fp16 = (Fp16Linear(gate_up), Fp16Linear(m.down_proj.weight))
    lm.fp16_head = Fp16Linear(lm.lm_head.weight) if on else None
    lm._fp16_source = lm.lm_head.weight.data_ptr()  # a `.to()` that moves nothing keeps the copies
    return on
