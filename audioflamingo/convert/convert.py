"""`audioflamingo convert af1|af2`: an official checkpoint + its LM's local folder -> a model directory.

The architecture is read off the checkpoint's own tensors (layer counts, widths, vocabulary), the LM
config from the `--lm` folder, and the tokenizer gets the official special tokens in the official
order (so every id matches the embedding rows the checkpoint was trained with).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from audioflamingo.config import AudioFlamingoConfig, EncoderConfig, TransformationConfig, WindowConfig, XAttnConfig
from audioflamingo.convert.htsat import check_front_end, htsat_to_hf
from audioflamingo.convert.io import TensorSource, read_pickle
from audioflamingo.convert.official import FLAVOURS, apply_plan, plan_keys
from audioflamingo.errors import ModelLoadError

# Added by the official factories, in this order (REFERENCE.md 8): ids follow the base vocabulary.
OFFICIAL_TOKENS = {"af1": ["<audio>", "<|endofchunk|>"], "af2": ["<audio>", "<|endofchunk|>", "<|PAD_TOKEN|>"]}
WINDOWS = {
    "af1": WindowConfig(sample_rate=44100, window_seconds=7.0, hop_seconds=1.75, max_windows=16),
    "af2": WindowConfig(sample_rate=16000, window_seconds=10.0, hop_seconds=10.0, max_windows=30),
}


def official_tokenizer(lm_dir: str | Path, flavour: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(lm_dir))
    tok.add_special_tokens({"additional_special_tokens": OFFICIAL_TOKENS[flavour]})
    if flavour == "af2":
        tok.pad_token = "<|PAD_TOKEN|>"
    elif tok.pad_token is None:
        tok.add_special_tokens({"pad_token": "<PAD>"})
    if tok.sep_token is None:
        tok.add_special_tokens({"sep_token": "<SEP>"})
    return tok


def _htsat_config(hts: dict[str, torch.Tensor], fusion: bool, projection_dim: int) -> dict:
    """transformers ClapAudioConfig fields, read off the tower's tensors."""
    embed = hts["patch_embed.proj.weight"].shape[0]
    stages = sorted({int(m.group(1)) for k in hts for m in [re.match(r"layers\.(\d+)\.", k)] if m})
    depths = [
        len({int(m.group(1)) for k in hts for m in [re.match(rf"layers\.{s}\.blocks\.(\d+)\.", k)] if m})
        for s in stages
    ]
    heads = [hts[f"layers.{s}.blocks.0.attn.relative_position_bias_table"].shape[1] for s in stages]
    return dict(
        spec_size=256,
        num_mel_bins=hts["bn0.weight"].shape[0],
        window_size=8,
        patch_size=4,
        patch_stride=[4, 4],
        patch_embeds_hidden_size=embed,
        hidden_size=embed * 2 ** (len(stages) - 1),
        depths=depths,
        num_attention_heads=heads,
        projection_dim=projection_dim,
        enable_fusion=fusion,
        fusion_type="aff_2d",
    )


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def clapcap_encoder(path: str | Path) -> tuple[EncoderConfig, dict[str, torch.Tensor], dict[str, int]]:
    """AF1's ClapCap (or an MS-CLAP 2023 checkpoint): its audio tower + projection."""
    from transformers import ClapFeatureExtractor

    state = read_pickle(Path(path))
    prefix = next(
        (
            p
            for p in ("clap.", "audio_encoder.", "clap.audio_encoder.", "")
            if f"{p}base.htsat.patch_embed.proj.weight" in state
        ),
        None,
    )
    if prefix is None:
        raise ModelLoadError(
            f"{path}: no HTS-AT audio tower (expected clap.base.htsat.* as in clapcap_weights_2023.pth)"
        )
    hts = _strip(state, prefix + "base.htsat.")
    proj = _strip(state, prefix + "projection.")
    mapped, dropped = htsat_to_hf(hts)
    if set(proj) != {"linear1.weight", "linear2.weight", "layer_norm.weight", "layer_norm.bias"}:
        raise ModelLoadError(f"{path}: MS-CLAP projection tensors missing or unexpected: {sorted(proj)}")
    for k, v in proj.items():
        mapped[f"audio_projection.{k}"] = v
    fe = dict(
        feature_size=hts["bn0.weight"].shape[0],
        hop_length=320,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14000,
        mel_sample_rate=32000,
    )
    melw = hts.get("logmel_extractor.melW")
    if melw is not None:  # which rate the shipped mel matrix was built for (MS-CLAP 2023: 32 kHz)
        for rate in (32000, 44100, 48000):
            try:
                check_front_end(
                    hts,
                    ClapFeatureExtractor(
                        **{**{k: v for k, v in fe.items() if k != "mel_sample_rate"}, "sampling_rate": rate}
                    ),
                )
                fe["mel_sample_rate"] = rate
                break
            except ModelLoadError:
                continue
        else:
            raise ModelLoadError(f"{path}: its mel filterbank matches no supported front end")
    hf = _htsat_config(hts, fusion=False, projection_dim=proj["linear1.weight"].shape[0])
    cfg = EncoderConfig(
        kind="hf_clap",
        output="pooled",
        dim=hf["projection_dim"],
        tokens_per_window=1,
        hf_config=hf,
        feature_extractor=fe,
        projection="msclap",
    )
    unused = _unused_groups(state, [prefix + "base.htsat.", prefix + "projection."], dropped)
    return cfg, {"model." + k: v for k, v in mapped.items()}, unused


def afclap_encoder(state: dict[str, torch.Tensor], where: str) -> tuple[EncoderConfig, dict, dict[str, int]]:
    """AF2's AF-CLAP audio branch (LAION-CLAP HTS-AT with fusion): dense last-stage tokens."""
    prefix = next(
        (
            p
            for p in ("clap.afclap.", "clap.nvclap.", "audio_branch.", "clap.audio_branch.", "")
            if f"{p}patch_embed.proj.weight" in state
        ),
        None,
    )
    if prefix is None:
        raise ModelLoadError(f"{where}: no AF-CLAP audio branch (clap.afclap.*, clap.nvclap.* or audio_branch.*)")
    hts = _strip(state, prefix)
    mapped, dropped = htsat_to_hf(hts)
    fusion = "patch_embed.mel_conv2d.weight" in hts
    hf = _htsat_config(hts, fusion=fusion, projection_dim=512)
    fe = dict(
        feature_size=hf["num_mel_bins"], hop_length=160, fft_window_size=1024, frequency_min=50, frequency_max=8000
    )
    cfg = EncoderConfig(
        kind="hf_clap", output="dense", dim=hf["hidden_size"], tokens_per_window=-1, hf_config=hf, feature_extractor=fe
    )
    return cfg, {"model." + k: v for k, v in mapped.items()}, _unused_groups(state, [prefix], dropped)


def _unused_groups(state, used_prefixes, dropped) -> dict[str, int]:
    """Counts of tensors deliberately not converted, by group, for the report."""
    out: dict[str, int] = {}
    for k in state:
        if any(k.startswith(p) for p in used_prefixes):
            continue
        g = k.split(".")[0] + ".*"
        out[g] = out.get(g, 0) + 1
    for why in dropped.values():
        out[why] = out.get(why, 0) + 1
    return out


def convert(
    flavour: str,
    checkpoint: str | Path,
    lm_dir: str | Path,
    out: str | Path,
    clap: str | Path | None = None,
    audio_heads: int = 8,
) -> dict:
    """audio_heads: heads of the transformation layers (not recorded in the tensors; 8 in every
    official config)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.text.tokenizer import special_ids

    if flavour not in FLAVOURS:
        raise ValueError(f"unknown checkpoint kind {flavour!r} (af1 or af2)")
    src = TensorSource(checkpoint)
    keys = src.keys()
    clap_prefixes = FLAVOURS[flavour]["clap_prefixes"]
    in_ckpt_clap = [k for k in keys if k.startswith(clap_prefixes)]
    if flavour == "af1":
        if clap is None:
            raise ModelLoadError("AF1 checkpoints hold no audio encoder: pass --clap clapcap_weights_2023.pth")
        enc_cfg, enc_tensors, unused = clapcap_encoder(clap)
    elif clap is not None:
        raw = read_pickle(Path(clap))
        enc_cfg, enc_tensors, unused = afclap_encoder(raw, str(clap))
    else:
        enc_cfg, enc_tensors, unused = afclap_encoder({k: src[k] for k in in_ckpt_clap}, str(checkpoint))
    lm_keys = [k for k in keys if not k.startswith(clap_prefixes)]
    if in_ckpt_clap and clap is not None:
        unused[f"clap.* inside the checkpoint (superseded by {Path(clap).name})"] = len(in_ckpt_clap)
    embed_key = next(
        (k for k in lm_keys if re.match(r"^lang_encoder\.model\.(decoder\.)?embed_tokens\.weight$", k)), None
    )
    if embed_key is None:
        raise ModelLoadError(f"{checkpoint}: no lang_encoder.*embed_tokens.weight: not an Audio Flamingo checkpoint")
    rows = src.shape(embed_key)[0]
    tok = official_tokenizer(lm_dir, flavour)
    if len(tok) != rows:
        raise ModelLoadError(
            f"{lm_dir}: tokenizer has {len(tok)} tokens with the official additions, but "
            f"{checkpoint} has {rows} embedding rows: wrong --lm folder for this checkpoint?"
        )
    tp = FLAVOURS[flavour]["transformation"]
    n_layers = len({m.group(1) for k in lm_keys for m in [re.match(rf"^{tp}\.layer_stack\.(\d+)\.", k)] if m})
    d = src.shape(f"{tp}.layer_stack.0.slf_attn.w_qs.weight")[0]
    tcfg = TransformationConfig(
        dim=d,
        num_layers=n_layers,
        num_heads=audio_heads,
        ffn_dim=src.shape(f"{tp}.layer_stack.0.pos_ffn.w_1.weight")[0],
        positions="sinusoidal" if flavour == "af1" else "rotary",
        rotary_base=4096.0,
        # AF1's weights were trained with unmasked silence windows; AF2 masks them
        padded_windows="official" if flavour == "af1" else "masked",
    )
    if flavour == "af1":
        tcfg.max_positions = src.shape(f"{tp}.position_enc.pos_table")[1]
    xname = FLAVOURS[flavour]["xattn"]
    xlayers = sorted(
        {int(m.group(1)) for k in lm_keys for m in [re.match(rf"^lang_encoder\..+\.layers\.(\d+)\.{xname}\.", k)] if m}
    )
    if not xlayers:
        raise ModelLoadError(f"{checkpoint}: no {xname} tensors: not an {flavour.upper()} checkpoint")
    q_key = next(k for k in lm_keys if k.endswith(f".{xlayers[0]}.{xname}.attn.to_q.weight"))
    ff_key = next(k for k in lm_keys if k.endswith(f".{xlayers[0]}.{xname}.ff.1.weight"))
    inner, lm_dim = src.shape(q_key)
    every = xlayers[1] - xlayers[0] if len(xlayers) > 1 else 1
    xcfg = XAttnConfig(every_n_layers=every, heads=inner // 64, dim_head=64, ff_mult=src.shape(ff_key)[0] // lm_dim)
    cfg = AudioFlamingoConfig(
        window=WINDOWS[flavour],
        encoder=enc_cfg,
        transformation=tcfg,
        xattn=xcfg,
        audio_token="<audio>",
        sep_token="<SEP>",
        eoc_token="<|endofchunk|>",
        preset=flavour,
        prompt_style="af1" if flavour == "af1" else "paper",
    )
    lm_cfg = AutoConfig.from_pretrained(str(lm_dir))
    lm_cfg.vocab_size = rows
    for name in ("bos_token_id", "eos_token_id"):
        if getattr(tok, name) is not None:
            setattr(lm_cfg, name, getattr(tok, name))
    lm_cfg.pad_token_id = tok.pad_token_id
    lm = AutoModelForCausalLM.from_config(lm_cfg)
    model = AudioFlamingo(cfg, lm, special_ids(tok, cfg.audio_token, cfg.sep_token, cfg.eoc_token))
    layer_ids = [int(i) for i in model.fusion.xattn.keys()]
    if layer_ids != xlayers:
        raise ModelLoadError(
            f"{checkpoint}: xattn-dense before layers {xlayers[:6]}..., the model places them before {layer_ids[:6]}..."
        )
    plan = plan_keys(lm_keys, flavour, {i: i for i in layer_ids})
    derived = {}
    if model.transformation.rotary is not None:
        derived["transformation.rotary.inv_freq"] = model.transformation.rotary.inv_freq
    apply_plan(model, src, plan, extra={"encoder." + k: v for k, v in enc_tensors.items()}, derived_values=derived)
    model.eval()
    model.save_pretrained(out, tok)
    return {
        "out": str(out),
        "flavour": flavour,
        **plan.summary(),
        "encoder_tensors": len(enc_tensors),
        "not_converted": unused,
        "vocab": rows,
        "special_ids": {t: tok.convert_tokens_to_ids(t) for t in ("<audio>", "<|endofchunk|>", "<SEP>")},
    }
