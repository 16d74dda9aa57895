"""bench/encoder_probe.py: which labels each event gives, and that the probe can fail."""

import importlib.util
from pathlib import Path

import numpy as np

spec = importlib.util.spec_from_file_location("encoder_probe", Path(__file__).parents[2] / "bench" / "encoder_probe.py")
ep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ep)


def test_event_labels():
    inst = {"kind": "instrument", "label": "clarinet", "attrs": {"pitch": "high", "tempo": "slow", "notes": 4}}
    got = dict(ep.event_labels(inst))
    assert got == {
        ("instrument", "pitch"): "high",
        ("instrument", "tempo"): "slow",
        ("instrument", "identity"): "clarinet",
        ("*", "speech or not"): "other",
    }
    sp = {"kind": "speech", "label": "speech", "attrs": {"gender": "female", "language": "italian"}}
    assert dict(ep.event_labels(sp)) == {
        ("speech", "language"): "italian",
        ("speech", "gender"): "female",
        ("*", "speech or not"): "speech",
    }


def test_probe_reads_a_separable_attribute_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    y = ["a" if v > 0 else "b" for v in x[:, 0]]
    assert ep.probe(list(x[:150]), y[:150], list(x[150:]), y[150:]) > 0.95
    noise_y = list(rng.choice(["a", "b"], 200))
    assert ep.probe(list(x[:150]), noise_y[:150], list(x[150:]), noise_y[150:]) < 0.75


def test_select_scenes_keeps_the_splits_and_the_kind():
    sc = [
        {"split": "train", "events": [{"kind": "speech"}, {"kind": "beep"}]},
        {"split": "train", "events": [{"kind": "instrument"}]},
        {"split": "heldout", "events": [{"kind": "speech"}]},
        {"split": "val", "events": [{"kind": "speech"}]},
    ]
    assert ep.select_scenes(sc, ["train", "heldout"]) == sc[:3]
    assert ep.select_scenes(sc, ["train", "heldout"], "speech") == [sc[0], sc[2]]
    assert ep.select_scenes(sc, ["train"], "animal") == []


def test_transformation_candidate_is_what_cross_attention_reads(tiny):
    import torch

    from audioflamingo.audio.windows import make_windows
    from tests.conftest import noise

    model, _ = tiny
    w = torch.as_tensor(make_windows(noise(3.0), model.config.window).frames)
    with torch.no_grad():
        got = ep.transformed(model)(w)
        enc = model.encoder(w)
        state = model.audio_state([[enc]])
    assert got.shape == (w.shape[0], enc.shape[1], model.config.transformation.dim)
    # window by window, token by token: the valid keys of the clip, in order
    torch.testing.assert_close(got.flatten(0, 1), state.audio[0][state.key_valid[0]])
    assert not torch.allclose(got, enc[..., : got.shape[-1]])  # the layers ran: not the tower's tokens
