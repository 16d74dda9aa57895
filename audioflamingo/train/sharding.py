"""Sharded training on PyTorch's own engine: FSDP2 (`fully_shard`), activation checkpointing and bf16
mixed precision, plus the full (unsharded) state dicts that checkpoints are written from.

Units, innermost first: each xattn block's `attn.to_kv`, each xattn-dense block, each LM decoder
layer, the transformation layers, then the root (the TrainStep, whose forward covers the whole audio
path and the LM). Why `to_kv` is its own unit: the fusion hooks compute an xattn layer's audio K/V
in the decoder layer's pre-hook, outside the xattn block's forward, where the block's own unit has
neither gathered its weights nor tracks their gradients; as a unit of its own it is gathered when
called and its gradients are reduced after its own backward.

The audio encoder is left out of the shards (`ignored_params`): clip features are computed outside
the step's forward (and cached), so its weights must stay whole on every rank. When a stage trains
it, its gradients are averaged by hand (`sync_replicated_grads`), as DDP would.

Activation checkpointing wraps the `forward` of each decoder layer and each xattn block (not
`__call__`), so FSDP's hooks and the fusion hooks stay outside the recomputed region: the recompute
sees the same explicit inputs (hidden states, K/V, mask) and never reads the fusion's per-pass
state, which is gone by the time backward runs.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint


def checkpoint_forward(module: nn.Module) -> None:
    """Recompute `module`'s forward in backward instead of keeping its activations."""
    if getattr(module, "_af_checkpointed", False):
        return
    inner = module.forward

    @functools.wraps(inner)
    def forward(*args, **kwargs):
        return checkpoint(inner, *args, use_reentrant=False, **kwargs)

    module.forward = forward  # type: ignore[method-assign]  # an instance attribute, hooks untouched
    module._af_checkpointed = True  # type: ignore[assignment]


def enable_activation_checkpointing(model) -> None:
    from audioflamingo.model.fusion import find_decoder_layers

    for layer in find_decoder_layers(model.lm):
        checkpoint_forward(layer)
    for block in model.fusion.xattn.values():
        checkpoint_forward(block)


def mixed_precision_policy(bf16: bool, output_dtype: torch.dtype | None = None):
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if bf16:  # gradients are reduced in fp32: summing over ranks in bf16 loses the small ones
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=output_dtype)
    return MixedPrecisionPolicy()


def shard(step: nn.Module, model, device: torch.device, bf16: bool) -> nn.Module:
    """Apply FSDP2 to `step` (a module whose forward runs `model` end to end); returns `step`."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from audioflamingo.model.fusion import find_decoder_layers

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    kw = dict(mesh=mesh, mp_policy=mixed_precision_policy(bf16))
    for block in model.fusion.xattn.values():
        fully_shard(block.attn.to_kv, **kw)
        fully_shard(block, **kw)
    for layer in find_decoder_layers(model.lm):
        fully_shard(layer, **kw)
    # The audio path writes the transformation's output into a buffer of the parameters' stored
    # dtype (fp32), so under bf16 the output is cast back to it.
    fully_shard(model.transformation, mesh=mesh, mp_policy=mixed_precision_policy(bf16, torch.float32))
    fully_shard(step, ignored_params=set(model.encoder.parameters()), **kw)
    return step


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def sync_replicated_grads(params: list[torch.nn.Parameter]) -> None:
    """Average the gradients of parameters kept whole on every rank (the encoder under FSDP)."""
    world = dist.get_world_size()
    for p in params:
        if p.grad is None:  # a rank whose share had no audio: its zero still joins the collective
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad.div_(world)


def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """clip_grad_norm_ over sharded (DTensor) and whole gradients together; returns the total norm.

    Shards are disjoint, so the squared norm is the sum of each rank's local squares; whole
    gradients are identical on every rank and are counted once."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    dev = grads[0].device
    sharded = torch.zeros((), dtype=torch.float64, device=dev)
    whole = torch.zeros((), dtype=torch.float64, device=dev)
    for g in grads:  # summed on the device: one host sync per step, not one per tensor
        if isinstance(g, DTensor):
            sharded += torch.linalg.vector_norm(g.to_local(), dtype=torch.float32).double() ** 2
        else:
            whole += torch.linalg.vector_norm(g, dtype=torch.float32).double() ** 2
    if dist.is_initialized():
        dist.all_reduce(sharded)
    total = math.sqrt(float(sharded + whole))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return total


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def _tie(model: nn.Module, state: dict) -> dict:
    """Tied parameters (an LM head sharing the embedding) as one tensor again, so the weights file
    keeps one copy under the name an unsharded save keeps."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    for group in names.values():
        held = [n for n in group if n in state]
        for n in group if held else []:
            state[n] = state[held[0]]
    return state


def full_model_state(model: nn.Module) -> dict:
    """Every rank calls this (it gathers); rank 0 gets the whole state dict on CPU, others {}."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_options(cpu_offload=True))
    for k, t in state.items():
        # Small gathered tensors can be views into one shared buffer, which the weights file
        # writer takes for tied weights and refuses: each gets storage of its own.
        if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes() != t.nbytes:
            state[k] = t.clone()
    return _tie(model, state) if state else state


def full_optimizer_state(model: nn.Module, optimizer) -> dict:
    """Every rank calls this; rank 0 gets the optimizer state keyed by parameter names, others {}."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))


def load_full_model_state(model: nn.Module, state: dict) -> None:
    """Rank 0 passes the whole state dict, the others {}; each rank keeps its shards of it."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_options(broadcast_from_rank0=True))


def load_full_optimizer_state(model: nn.Module, optimizer, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_options(broadcast_from_rank0=True))


def collective_device() -> torch.device:
    """Where a small tensor for a collective must live: the GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def peak_memory_mb(device: torch.device) -> float:
    """This process' peak: allocated GPU memory on CUDA, resident set size otherwise."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
