import math

import torch

from audioflamingo.config import TransformationConfig
from audioflamingo.model.positions import RotaryTime, sinusoid_table
from audioflamingo.model.transformation import RepresentationTransformation
from tests.conftest import make_model, noise


def test_sinusoid_table_formula():
    t = sinusoid_table(128, 16)[0]
    assert t.shape == (128, 16)
    pos, i = 7, 5  # odd channel -> cos(pos / 10000^(2*(i//2)/d))
    assert math.isclose(t[pos, i].item(), math.cos(pos / 10000 ** (2 * (i // 2) / 16)), abs_tol=1e-6)
    assert math.isclose(t[pos, 4].item(), math.sin(pos / 10000 ** (4 / 16)), abs_tol=1e-6)


def test_rotary_is_relative():
    rot = RotaryTime(8, 4096.0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    ang = rot.angles(20, torch.device("cpu"))

    def score(i, j):
        return (rot.apply(q, ang[i : i + 1]) * rot.apply(k, ang[j : j + 1])).sum()

    torch.testing.assert_close(score(3, 1), score(13, 11), atol=1e-5, rtol=0)
    assert torch.equal(rot.apply(q, ang[:1])[..., 8:], q[..., 8:])  # partial rotary


def _check_padding_invariance(positions):
    torch.manual_seed(0)
    cfg = TransformationConfig(dim=32, num_layers=2, num_heads=4, ffn_dim=64, positions=positions)
    tr = RepresentationTransformation(cfg).eval()
    x = torch.randn(1, 5, 32)
    short = tr(x, torch.ones(1, 5, dtype=torch.bool))
    padded_x = torch.cat([x, 100 * torch.randn(1, 3, 32)], dim=1)
    valid = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    padded = tr(padded_x, valid)
    torch.testing.assert_close(padded[:, :5], short, atol=1e-5, rtol=0)
    assert torch.all(padded[:, 5:] == 0)


def test_padded_windows_are_masked_sinusoidal():
    _check_padding_invariance("sinusoidal")


def test_padded_windows_are_masked_rotary():
    _check_padding_invariance("rotary")


def test_padded_windows_are_masked_rotary_sinusoidal():
    _check_padding_invariance("rotary+sinusoidal")


def test_rotary_sinusoidal_tells_positions_apart_where_rotary_alone_cannot():
    """Identical tokens: rotary attention sees only relative offsets, so every output is the same;
    the added table makes each position's output its own (what 'when' questions need)."""
    outs = {}
    for positions in ("rotary", "rotary+sinusoidal"):
        torch.manual_seed(0)
        cfg = TransformationConfig(dim=32, num_layers=2, num_heads=4, ffn_dim=64, positions=positions)
        tr = RepresentationTransformation(cfg).eval()
        outs[positions] = tr(torch.ones(1, 6, 32), torch.ones(1, 6, dtype=torch.bool))[0]
    torch.testing.assert_close(outs["rotary"][0], outs["rotary"][5], atol=1e-5, rtol=0)
    assert (outs["rotary+sinusoidal"][0] - outs["rotary+sinusoidal"][5]).abs().max() > 1e-2


def test_af1_block_is_post_ln_with_scaled_input():
    torch.manual_seed(0)
    cfg = TransformationConfig(dim=16, num_layers=1, num_heads=2, ffn_dim=32, positions="sinusoidal", max_positions=8)
    tr = RepresentationTransformation(cfg).eval()
    x = torch.randn(2, 4, 16)
    # Written out from the reference description, independently of the module's code path.
    h = x * 4.0 + sinusoid_table(8, 16)[:, :4]
    h = torch.nn.functional.layer_norm(h, (16,), tr.layer_norm.weight, tr.layer_norm.bias, 1e-6)
    a = tr.layer_stack[0].slf_attn
    q, k, v = (w(h).view(2, 4, 2, 8).transpose(1, 2) for w in (a.w_qs, a.w_ks, a.w_vs))
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), -1) @ v
    h = torch.nn.functional.layer_norm(
        a.fc(att.transpose(1, 2).reshape(2, 4, 16)) + h, (16,), a.layer_norm.weight, a.layer_norm.bias, 1e-6
    )
    f = tr.layer_stack[0].pos_ffn
    h = torch.nn.functional.layer_norm(
        f.w_2(torch.relu(f.w_1(h))) + h, (16,), f.layer_norm.weight, f.layer_norm.bias, 1e-6
    )
    torch.testing.assert_close(tr(x, torch.ones(2, 4, dtype=torch.bool)), h, atol=1e-5, rtol=0)


def test_embeddings_cached_per_clip_and_deterministic():
    model, _ = make_model("qwen2")
    model.clip_cache.clear()
    wave = noise(1.3, seed=5)
    a = model.encode_clips([wave])[0]
    misses = model.clip_cache.misses
    b = model.encode_clips([wave.copy()])[0]
    assert model.clip_cache.misses == misses and model.clip_cache.hits >= 1
    assert torch.equal(a, b)
    model.clip_cache.clear()
    assert torch.equal(model.encode_clips([wave])[0], a)  # recomputed: bit-identical
    # One clip encoded alone or with others gives the same features.
    model.clip_cache.clear()
    both = model.encode_clips([noise(2.2, seed=6), wave])[1]
    torch.testing.assert_close(both, a, atol=1e-6, rtol=0)
