import torch

from audioflamingo.cli import main
from audioflamingo.model.flamingo import AudioFlamingo
from tests.conftest import make_model


def _save(tmp_path, name, **kw):
    model, tok = make_model(**kw)
    model.save_pretrained(tmp_path / name, tok)
    return model


def test_average_is_the_weighted_mean_of_every_tensor_and_loads(tmp_path, capsys):
    a = _save(tmp_path, "a", seed=0)
    b = _save(tmp_path, "b", seed=1)
    pa, pb = dict(a.state_dict()), dict(b.state_dict())
    assert any(not torch.equal(pa[k], pb[k]) for k in pa)  # the seeds differ somewhere

    assert main(["average", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "mean")]) == 0
    mean = AudioFlamingo.from_pretrained(tmp_path / "mean")
    for k, v in mean.state_dict().items():
        torch.testing.assert_close(v, (pa[k] + pb[k]) / 2, rtol=0, atol=1e-6, msg=k)

    assert (
        main(["average", str(tmp_path / "a"), str(tmp_path / "b"), "--weights", "3,1", "--out", str(tmp_path / "w")])
        == 0
    )
    weighted = AudioFlamingo.from_pretrained(tmp_path / "w")
    for k, v in weighted.state_dict().items():
        torch.testing.assert_close(v, 0.75 * pa[k] + 0.25 * pb[k], rtol=0, atol=1e-6, msg=k)
    assert '"weights": [0.75, 0.25]' in capsys.readouterr().out


def test_average_of_a_model_with_itself_is_that_model(tmp_path):
    a = _save(tmp_path, "a", seed=3)
    assert main(["average", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "same")]) == 0
    same = AudioFlamingo.from_pretrained(tmp_path / "same")
    for k, v in same.state_dict().items():
        assert torch.equal(v, a.state_dict()[k]), k


def test_average_refuses_other_architectures_and_writes_nothing(tmp_path, capsys):
    _save(tmp_path, "a")
    _save(tmp_path, "b", every=2)  # other config: cross-attention every 2nd layer
    assert main(["average", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "mean")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b/config.json: xattn.every_n_layers is 2, but 1" in err  # names the key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no output, no temp folder


def test_checkpoints_of_one_run_differing_in_max_windows_average(tmp_path, capsys):
    """stage-pretrain (the curriculum's few windows) + final: a training setting, not architecture."""
    import json

    _save(tmp_path, "pretrain", seed=0)
    _save(tmp_path, "final", seed=1)
    cfg = json.loads((tmp_path / "pretrain" / "config.json").read_text())
    cfg["window"]["max_windows"] = 3
    (tmp_path / "pretrain" / "config.json").write_text(json.dumps(cfg))
    argv = ["average", str(tmp_path / "pretrain"), str(tmp_path / "final"), "--out", str(tmp_path / "soup")]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["training_settings_differing"] == {"window.max_windows": {"values": [3, 8], "kept": 8}}
    assert AudioFlamingo.from_pretrained(tmp_path / "soup").config.window.max_windows == 8


def test_average_refuses_bad_arguments(tmp_path, capsys):
    _save(tmp_path, "a")
    cases = [
        (["average", str(tmp_path / "a"), "--out", str(tmp_path / "x")], "at least two", 2),  # usage
        (["average", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "a")], "not empty", 1),
        (["average", str(tmp_path / "a"), str(tmp_path / "nope"), "--out", str(tmp_path / "x")], "nope", 1),
        (
            ["average", str(tmp_path / "a"), str(tmp_path / "a"), "--weights", "1", "--out", str(tmp_path / "x")],
            "--weights",
            2,
        ),
        (
            ["average", str(tmp_path / "a"), str(tmp_path / "a"), "--weights", "1,z", "--out", str(tmp_path / "x")],
            "--weights",
            2,
        ),
    ]
    for argv, needle, code in cases:
        assert main(argv) == code, argv
        assert needle in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_key_left_out_and_a_key_at_its_default_are_the_same_config(tmp_path):
    """Older model dirs omit fields added since (cpu_lm_weights): parsed, they equal the default."""
    import json

    _save(tmp_path, "old", seed=0)
    _save(tmp_path, "new", seed=1)
    for name, drop in (("old", True), ("new", False)):
        path = tmp_path / name / "config.json"
        cfg = json.loads(path.read_text())
        if drop:
            cfg.pop("cpu_lm_weights", None)
        else:
            cfg["cpu_lm_weights"] = "float32"
        path.write_text(json.dumps(cfg))
    assert main(["average", str(tmp_path / "old"), str(tmp_path / "new"), "--out", str(tmp_path / "soup")]) == 0
    # a real difference in that key is still refused
    cfg = json.loads((tmp_path / "new" / "config.json").read_text())
    cfg["cpu_lm_weights"] = "float16"
    (tmp_path / "new" / "config.json").write_text(json.dumps(cfg))
    assert main(["average", str(tmp_path / "old"), str(tmp_path / "new"), "--out", str(tmp_path / "soup2")]) == 1
    assert not (tmp_path / "soup2").exists()
