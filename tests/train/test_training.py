"""Training: overfitting, multi-process equivalence, SIGKILL + resume, robustness."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from audioflamingo.cli import main
from audioflamingo.data.toy import losses, write_recipe, write_toy

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def test_overfit_eight_samples(tmp_path):
    m = write_toy(tmp_path / "toy", n=8)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=300, lr=3e-3, micro=8)
    assert main(["train", str(r), "--no-progress"]) == 0
    l = losses(tmp_path / "run")
    assert min(l[s] for s in range(291, 301)) < 0.1, [round(l[s], 3) for s in range(280, 301)]
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    m = write_toy(tmp_path / "toy", n=8)
    one = write_recipe(tmp_path / "one.yaml", m, tmp_path / "one", steps=4, micro=2, accum=2)
    two = write_recipe(tmp_path / "two.yaml", m, tmp_path / "two", steps=4, micro=2, accum=1)
    subprocess.run(
        [sys.executable, "-m", "audioflamingo", "train", str(one), "--no-progress"],
        env=ENV,
        check=True,
        capture_output=True,
    )
    r = subprocess.run(
        [sys.executable, "-m", "audioflamingo", "train", str(two), "--nproc", "2", "--no-progress"],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for s in a:  # same data, same normalisation; only the order of float sums differs
        assert abs(a[s] - b[s]) <= 1e-4 * abs(a[s]), (s, a[s], b[s])


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    m = write_toy(tmp_path / "toy", n=8)
    ref = write_recipe(tmp_path / "ref.yaml", m, tmp_path / "ref", steps=160, save_every=10)
    cut = write_recipe(tmp_path / "cut.yaml", m, tmp_path / "cut", steps=160, save_every=10)

    def train(recipe, *extra):  # all runs alike (same thread count), so float sums agree bit for bit
        subprocess.run(
            [sys.executable, "-m", "audioflamingo", "train", str(recipe), "--no-progress", *extra],
            env=ENV,
            check=True,
            capture_output=True,
        )

    train(ref)
    proc = subprocess.Popen(
        [sys.executable, "-m", "audioflamingo", "train", str(cut), "--no-progress"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= 35:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(log.read_text().splitlines())
    assert 35 <= done < 160, "the run should have been killed mid-way"
    train(cut, "--resume")  # a half-written step-N.tmp, if the kill left one, is never loaded
    a, b = losses(tmp_path / "ref"), losses(tmp_path / "cut")
    assert sorted(a) == sorted(b) == list(range(1, 161))
    assert all(a[s] == b[s] for s in a), [(s, a[s], b[s]) for s in a if a[s] != b[s]][:3]


def test_unreadable_clips_are_skipped_and_counted(tmp_path):
    m = write_toy(tmp_path / "toy", n=6, unreadable=2)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=6)
    assert main(["train", str(r), "--no-progress"]) == 0
    last = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["skipped_clips"] > 0 and last["step"] == 6


def test_nan_loss_stops_with_clear_message_keeping_last_checkpoint(tmp_path, monkeypatch, capsys):
    from audioflamingo.train import trainer as T

    m = write_toy(tmp_path / "toy", n=8)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=10, save_every=2)
    real = T.TrainStep.forward
    calls = {"n": 0}

    def poisoned(self, *a):
        calls["n"] += 1
        out = real(self, *a)
        return out * float("nan") if calls["n"] == 5 else out

    monkeypatch.setattr(T.TrainStep, "forward", poisoned)
    assert main(["train", str(r), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "loss became nan at step 5" in err and "step-00000004" in err
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["step-00000002", "step-00000004"]
    from audioflamingo.model.flamingo import AudioFlamingo

    AudioFlamingo.from_pretrained(tmp_path / "run" / "checkpoints" / "step-00000004")  # intact, loadable


def test_pretrain_stage_freezes_lm_and_optimizer_holds_only_trainable(tmp_path):
    from audioflamingo.presets import build
    from audioflamingo.train.recipe import StageSpec, TrainSpec
    from audioflamingo.train.stages import make_optimizer, set_trainable

    model, _ = build("tiny")
    set_trainable(model, "pretrain")
    assert not any(p.requires_grad for p in model.lm.parameters())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.fusion.xattn.parameters())
    opt, _ = make_optimizer(model, StageSpec("p", "pretrain", 1, []), TrainSpec())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in model.parameters() if p.requires_grad}
    set_trainable(model, "sft")
    assert all(p.requires_grad for p in model.lm.parameters())
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_checkpoints_keep_last_n_and_are_loadable(tmp_path):
    m = write_toy(tmp_path / "toy", n=4)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=6, save_every=1)
    assert main(["train", str(r), "--no-progress"]) == 0
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step-00000005", "step-00000006"]
    st = torch.load(tmp_path / "run" / "checkpoints" / names[-1] / "optimizer.pt", weights_only=True)
    assert st["state"]


def test_dry_run_reports_stages(tmp_path, capsys):
    m = write_toy(tmp_path / "toy", n=4)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=3, kind="pretrain")
    assert main(["train", str(r), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "stage 1 'pretrain' (pretrain): 3 steps" in out and "4 records" in out and "trainable" in out
    assert not (tmp_path / "run").exists()


def test_recipe_task_description_override_and_unknown_keys(tmp_path):
    import yaml

    from audioflamingo.data.samples import render_record
    from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer
    from audioflamingo.train.recipe import load_recipe
    from audioflamingo.train.trainer import StageData

    m = write_toy(tmp_path / "toy", n=2)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=1)
    raw = yaml.safe_load(r.read_text())
    raw["stages"][0]["datasets"][0]["task_description"] = "The task is tone naming."
    r.write_text(yaml.safe_dump(raw))
    recipe = load_recipe(r)
    tok = byte_level_tokenizer()
    add_special_tokens(tok)
    data = StageData(recipe.stages[0], tok, recipe, 0)
    assert render_record(data.records[0][0], tok)[0].text.startswith("<s>The task is tone naming.<audio>")
    raw["stages"][0]["learning_rate"] = 1
    r.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="unknown key.*learning_rate"):
        load_recipe(r)


def test_recipe_questions_keeps_only_those_kinds(tmp_path):
    import json

    import yaml

    from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer
    from audioflamingo.train.recipe import load_recipe
    from audioflamingo.train.trainer import StageData

    m = write_toy(tmp_path / "toy", n=6)
    rows = [json.loads(x) for x in m.read_text().splitlines()]
    kinds = ["first", "last", "count", "last", None, "first"]
    for r, k in zip(rows, kinds):
        r.update(task="aqa", instruction="Which sound comes first?", **({"question": k} if k else {}))
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=1)
    raw = yaml.safe_load(r.read_text())
    raw["stages"][0]["datasets"][0]["questions"] = ["last", "count"]
    r.write_text(yaml.safe_dump(raw))
    tok = byte_level_tokenizer()
    add_special_tokens(tok)
    recipe = load_recipe(r)
    data = StageData(recipe.stages[0], tok, recipe, 0)
    assert [x.id for x in data.records[0]] == ["t1", "t2", "t3"]
    assert list(data.sampler.sizes) == [3]  # the mixture samples from the kept records only
    raw["stages"][0]["datasets"][0]["questions"] = ["gender"]
    r.write_text(yaml.safe_dump(raw))
    recipe = load_recipe(r)
    with pytest.raises(ValueError, match="no records of the question kinds gender"):
        StageData(recipe.stages[0], tok, recipe, 0)
    raw["stages"][0]["datasets"][0]["questions"] = []
    r.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="questions"):
        load_recipe(r)


def test_recipe_answers_keeps_only_those_answers(tmp_path):
    """One dataset entry per answer balances a question's classes, whatever the corpus' prior."""
    import json

    import yaml

    from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer
    from audioflamingo.train.recipe import load_recipe
    from audioflamingo.train.trainer import StageData

    m = write_toy(tmp_path / "toy", n=6)
    rows = [json.loads(x) for x in m.read_text().splitlines()]
    for r, (k, a) in zip(rows, [("gender", "male"), ("gender", "female"), ("gender", "female"), ("first", "male")] * 2):
        r.update(task="aqa", instruction="Is it a male or a female voice?", question=k, output=a)
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=1)
    raw = yaml.safe_load(r.read_text())
    entry = raw["stages"][0]["datasets"][0]
    raw["stages"][0]["datasets"] = [
        {**entry, "questions": ["gender"], "answers": ["male"]},
        {**entry, "questions": ["gender"], "answers": ["female"]},
    ]
    r.write_text(yaml.safe_dump(raw))
    tok = byte_level_tokenizer()
    add_special_tokens(tok)
    recipe = load_recipe(r)
    data = StageData(recipe.stages[0], tok, recipe, 0)
    assert [x.id for x in data.records[0]] == ["t0", "t4"]  # male gender questions; t3 is another kind
    assert [x.id for x in data.records[1]] == ["t1", "t2", "t5"]
    raw["stages"][0]["datasets"][0]["answers"] = ["a cat"]
    r.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="no records answered a cat"):
        StageData(load_recipe(r).stages[0], tok, load_recipe(r), 0)
    raw["stages"][0]["datasets"][0]["answers"] = []
    r.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="answers"):
        load_recipe(r)


@pytest.mark.parametrize("train_encoder", [False, True])
def test_train_encoder_lets_the_lm_loss_reach_the_audio_encoder(tmp_path, train_encoder):
    import yaml

    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.presets import build
    from audioflamingo.train.recipe import load_recipe
    from audioflamingo.train.stages import make_optimizer, set_trainable

    m = write_toy(tmp_path / "toy", n=8)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=3, kind="sft", micro=4)
    recipe = yaml.safe_load(r.read_text())
    recipe["stages"][0].update(train_encoder=train_encoder, encoder_lr=1e-3)
    r.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(r), "--no-progress"]) == 0
    before, _ = build("tiny", seed=0)
    after = AudioFlamingo.from_pretrained(tmp_path / "run" / "final")
    changed = [n for n, p in after.encoder.state_dict().items() if not torch.equal(p, before.encoder.state_dict()[n])]
    assert bool(changed) == train_encoder, changed
    # Its own optimizer group: the stage's encoder_lr, no weight decay.
    stage = load_recipe(r).stages[0]
    set_trainable(before, stage.kind, stage.train_encoder)
    groups = make_optimizer(before, stage, load_recipe(r).train)[0].param_groups
    enc = [g for g in groups if any(p is q for p in g["params"] for q in before.encoder.parameters())]
    assert (
        (len(enc) == 1 and enc[0]["initial_lr"] == 1e-3 and enc[0]["weight_decay"] == 0.0) if train_encoder else not enc
    )
    # Inference caches clip features either way (nothing is being trained there).
    after.encode_clips([torch.zeros(16000).numpy()])
    assert len(after.clip_cache._d) == 1


def test_lm_stage_trains_on_copy_drills_and_episode_text_audio_stages_refuse_text(tmp_path, capsys):
    from audioflamingo.data.icl import build_copy_drills
    from audioflamingo.presets import build
    from audioflamingo.train.trainer import text_sample

    drills = tmp_path / "drills.jsonl"
    build_copy_drills(drills, 16, seed=0, vocabulary=["violin", "bell"])
    r = write_recipe(tmp_path / "lm.yaml", drills, tmp_path / "lm", steps=3, kind="lm")
    assert main(["train", str(r), "--no-progress"]) == 0 and sorted(losses(tmp_path / "lm")) == [1, 2, 3]
    r = write_recipe(tmp_path / "sft.yaml", drills, tmp_path / "sft", steps=1, kind="sft")
    assert main(["train", str(r), "--no-progress"]) != 0
    assert "drills.jsonl: has text records (no audio)" in capsys.readouterr().err

    # an ICL episode as lm text: its template with <audio> markers, no clips, the answers the targets
    _, tok = build("tiny")
    row = {
        "id": "e",
        "audio": "q.wav",
        "task": "classify",
        "instruction": "Which?",
        "output": "kenipo",
        "options": ["bokadu", "kenipo"],
        "shots": [{"audio": "s.wav", "instruction": "Which?", "output": "kenipo", "options": ["bokadu", "kenipo"]}],
    }
    (tmp_path / "e.jsonl").write_text(json.dumps(row) + "\n")
    from audioflamingo.data.manifest import load_manifest

    ids, labels, clips = text_sample(load_manifest(tmp_path / "e.jsonl")[0], tok, 256)
    assert clips == [] and tok.decode(ids).count("<audio>") == 2
    assert tok.decode([i for i, l in zip(ids, labels) if l != -100]).replace(" ", "").count("kenipo<EOC>") == 2


def test_recipe_switches_a_model_directory_to_rotary_sinusoidal_positions(tmp_path, capsys):
    import yaml

    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.presets import build

    m = write_toy(tmp_path / "toy", n=4)
    model, tok = build("tiny", seed=0)
    model.save_pretrained(tmp_path / "start", tok)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=2)
    spec = yaml.safe_load(r.read_text())
    spec["model"] = {"init": str(tmp_path / "start"), "positions": "rotary+sinusoidal"}
    r.write_text(yaml.safe_dump(spec))
    assert main(["train", str(r), "--no-progress"]) == 0
    final = AudioFlamingo.from_pretrained(tmp_path / "run" / "final")
    assert final.config.transformation.positions == "rotary+sinusoidal"
    assert final.transformation.position_enc is not None and final.transformation.rotary is not None

    spec["model"] = {"init": "tiny", "positions": "rotary+sinusoidal"}  # presets: refused, one line
    r.write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    assert main(["train", str(r), "--no-progress"]) == 1
    assert "model.positions" in capsys.readouterr().err
