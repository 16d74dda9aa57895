"""Official Audio Flamingo checkpoints (REFERENCE.md 8) -> this project's model directories.

Every official tensor is accounted for, or the conversion stops listing the keys:
- mapped: renamed onto one of our parameters/buffers, shape checked;
- duplicate: the same tensor stored twice by the original wrapper (`old_decoder_blocks.*`,
  `gated_cross_attn_layers*.*`, a tied `lm_head`), dropped only after checking it is equal;
- derived: a constant our modules compute themselves (rotary `inv_freq`), dropped after checking it
  equals ours.
Every parameter of ours must receive a tensor; nothing is loaded with strict=False.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from audioflamingo.errors import ModelLoadError

FLAVOURS = {
    # official prefix of the transformation layers, xattn submodule name, duplicate-group names
    "af1": dict(
        transformation="audio_transformer",
        xattn="gated_cross_attn_layer",
        dup_xattn="gated_cross_attn_layers",
        clap_prefixes=("clap.",),
    ),
    "af2": dict(
        transformation="audio_transformer_clap",
        xattn="gated_cross_attn_layer_sound",
        dup_xattn="gated_cross_attn_layers_sound",
        clap_prefixes=("clap.nvclap.", "clap.afclap.", "clap."),
    ),
}


@dataclass
class Plan:
    mapped: dict[str, str] = field(default_factory=dict)  # our key -> official key
    duplicates: dict[str, str] = field(default_factory=dict)  # official key -> the official key it repeats
    derived: dict[str, str] = field(default_factory=dict)  # official key -> our (non-persistent) buffer name
    unmapped: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "mapped": len(self.mapped),
            "duplicates_dropped": len(self.duplicates),
            "derived_checked": len(self.derived),
            "unmapped": len(self.unmapped),
        }


def plan_keys(official_keys: list[str], flavour: str, layer_to_xattn: dict[int, int]) -> Plan:
    """Decide where every official non-encoder key goes (no tensor is read here); the encoder's
    tensors are converted by convert/htsat.py and arrive in `apply_plan` as `extra`."""
    f = FLAVOURS[flavour]
    plan = Plan()
    layers_path = None
    for k in official_keys:
        m = re.match(r"^lang_encoder\.(.+\.layers)\.\d+\.decoder_layer\.", k)
        if m:
            layers_path = m.group(1)
            break
    tprefix = f["transformation"] + "."
    for k in official_keys:
        if k.startswith(tprefix):
            rest = k[len(tprefix) :]
            if rest == "position_enc.inv_freq":
                plan.derived[k] = "transformation.rotary.inv_freq"
            else:
                plan.mapped["transformation." + rest] = k
            continue
        m = re.match(r"^lang_encoder\.(.+\.layers)\.(\d+)\.decoder_layer\.(.+)$", k)
        if m:
            plan.mapped[f"lm.{m.group(1)}.{m.group(2)}.{m.group(3)}"] = k
            continue
        m = re.match(rf"^lang_encoder\.(.+\.layers)\.(\d+)\.{f['xattn']}\.(.+)$", k)
        if m and int(m.group(2)) in layer_to_xattn:
            plan.mapped[f"fusion.xattn.{layer_to_xattn[int(m.group(2))]}.{m.group(3)}"] = k
            continue
        m = re.match(r"^lang_encoder\.old_decoder_blocks\.(\d+)\.(.+)$", k)
        if m and layers_path:
            plan.duplicates[k] = f"lang_encoder.{layers_path}.{m.group(1)}.decoder_layer.{m.group(2)}"
            continue
        m = re.match(rf"^lang_encoder\.{f['dup_xattn']}\.(\d+)\.(.+)$", k)
        if m and layers_path:
            plan.duplicates[k] = f"lang_encoder.{layers_path}.{m.group(1)}.{f['xattn']}.{m.group(2)}"
            continue
        if k.startswith("lang_encoder."):
            plan.mapped["lm." + k[len("lang_encoder.") :]] = k
            continue
        plan.unmapped.append(k)
    return plan


def apply_plan(
    model: torch.nn.Module,
    source,
    plan: Plan,
    extra: dict[str, torch.Tensor] | None = None,
    derived_values: dict[str, torch.Tensor] | None = None,
) -> None:
    """Copy every planned tensor into `model` in place, checking shapes, duplicates and derived constants.

    `source[key]` gives one official tensor at a time (so a sharded checkpoint is never held twice);
    `extra` holds tensors produced by an encoder conversion (our key -> tensor)."""
    extra = dict(extra or {})
    own = model.state_dict(keep_vars=True)
    ties = _tied_names(model)
    problems = []
    if plan.unmapped:
        problems.append(f"{len(plan.unmapped)} official tensor(s) with no place in the model: {plan.unmapped[:12]}")
    targets = set(plan.mapped) | set(extra)
    stray = sorted(t for t in targets if t not in own)
    if stray:
        problems.append(f"{len(stray)} mapped name(s) the model does not have: {stray[:12]}")
    missing = sorted(k for k in own if k not in targets and ties.get(k) not in targets)
    if missing:
        problems.append(f"{len(missing)} model tensor(s) the checkpoint does not provide: {missing[:12]}")
    for ours, off in plan.mapped.items():
        if ours in own and tuple(own[ours].shape) != tuple(source.shape(off)):
            problems.append(
                f"{off}: shape {tuple(source.shape(off))}, model expects {tuple(own[ours].shape)} for {ours}"
            )
    for ours, t in extra.items():
        if ours in own and tuple(own[ours].shape) != tuple(t.shape):
            problems.append(f"{ours}: converted shape {tuple(t.shape)}, model expects {tuple(own[ours].shape)}")
    if problems:
        raise ModelLoadError("checkpoint does not match the model:\n  " + "\n  ".join(problems))
    for dup, kept in plan.duplicates.items():
        if kept not in source:
            raise ModelLoadError(f"{dup}: duplicate of {kept}, which the checkpoint lacks")
        if not torch.equal(source[dup], source[kept]):
            raise ModelLoadError(f"{dup} differs from {kept}: the checkpoint's duplicated groups disagree")
    for ours, off in plan.mapped.items():  # tied in the model (embeddings / lm_head): the copies must agree
        partner = ties.get(ours)
        if partner in plan.mapped and ours < partner and not torch.equal(source[off], source[plan.mapped[partner]]):
            raise ModelLoadError(
                f"{off} and {plan.mapped[partner]} differ, but the LM ties them "
                f"({ours} = {partner}): untied checkpoint for a tied LM config"
            )
    for off, name in plan.derived.items():
        want = (derived_values or {}).get(name)
        got = source[off]
        if want is None or want.shape != got.shape or not torch.allclose(want.float(), got.float(), atol=1e-6):
            raise ModelLoadError(f"{off}: differs from the value this model computes for {name}")
    with torch.no_grad():
        for ours, off in plan.mapped.items():
            own[ours].copy_(source[off])
        for ours, t in extra.items():
            own[ours].copy_(t)


def _tied_names(model: torch.nn.Module) -> dict[str, str]:
    """state-dict names that share storage with another name (tied embeddings): name -> the other."""
    by_ptr: dict[int, list[str]] = {}
    for k, v in model.state_dict(keep_vars=True).items():
        by_ptr.setdefault(v.data_ptr(), []).append(k)
    out = {}
    for names in by_ptr.values():
        for a in names:
            for b in names:
                if a != b:
                    out[a] = b
    return out
