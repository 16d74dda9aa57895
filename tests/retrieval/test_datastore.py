import json

import numpy as np
import pytest

from audioflamingo.cli import main
from audioflamingo.data.manifest import Record
from audioflamingo.data.toy import write_toy
from audioflamingo.retrieval.datastore import Datastore, DatastoreError


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    m = write_toy(root / "toy", n=12)
    assert main(["init", "--out", str(root / "model")]) == 0
    assert main(["init", "--out", str(root / "other"), "--seed", "5"]) == 0
    assert main(["index", "build", str(m), "--out", str(root / "store"), "--model", str(root / "model")]) == 0
    return root, m


def test_build_query_excludes_the_query_file_and_is_exact(setup, capsys):
    root, m = setup
    capsys.readouterr()
    clip = root / "toy" / "clips" / "tone000.wav"
    assert (
        main(["index", "query", str(clip), "--index", str(root / "store"), "-k", "3", "--model", str(root / "model")])
        == 0
    )
    hits = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(hits) == 3 and hits[0]["id"] == "t8"  # same pitch, another file
    assert all(h["id"] != "t0" for h in hits)
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    info = json.loads((root / "store" / "datastore.json").read_text())
    assert info["count"] == 12 and info["kind"] == "exact"


def test_incremental_add(setup, tmp_path, capsys):
    root, m = setup
    import shutil

    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    extra = write_toy(tmp_path / "more", n=3)
    assert main(["index", "add", str(extra), "--index", str(store), "--model", str(root / "model")]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["total"] == 15
    s = Datastore.open(store)
    assert len(s) == 15 and s.record(14).id == "t2" and s.record(14).audio.is_file()


def test_other_encoder_is_refused(setup, capsys):
    root, _ = setup
    clip = root / "toy" / "clips" / "tone000.wav"
    assert main(["index", "query", str(clip), "--index", str(root / "store"), "--model", str(root / "other")]) == 1
    err = capsys.readouterr().err
    assert "built with encoder" in err and "rebuild the datastore" in err


@pytest.mark.parametrize(
    "damage,needle",
    [
        ("empty", "missing or empty index"),
        ("corrupt", "corrupt index"),
        ("noinfo", "not a datastore"),
        ("count", "holds 12 vectors"),
    ],
)
def test_damaged_store_is_reported(setup, tmp_path, damage, needle):
    import shutil

    root, _ = setup
    store = tmp_path / "s"
    shutil.copytree(root / "store", store)
    if damage == "empty":
        (store / "index.faiss").write_bytes(b"")
    elif damage == "corrupt":
        (store / "index.faiss").write_bytes(b"garbage" * 100)
    elif damage == "noinfo":
        (store / "datastore.json").unlink()
    else:
        info = json.loads((store / "datastore.json").read_text())
        info["count"] = 99
        (store / "datastore.json").write_text(json.dumps(info))
    with pytest.raises(DatastoreError, match=needle):
        Datastore.open(store)


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_index_kinds_recall(tmp_path, kind):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 16)).astype(np.float32)
    recs = [Record(id=str(i), audio=tmp_path / f"{i}.wav", task="caption", output=str(i)) for i in range(2000)]
    s = Datastore.create(tmp_path / kind, "enc", 16, kind, train_vectors=x)
    s.add_vectors(x, recs)
    s.save()
    s = Datastore.open(tmp_path / kind, "enc", 16)
    q = rng.standard_normal((50, 16)).astype(np.float32)
    _, got = s.search(q, 10)
    truth = np.argsort(((q[:, None] - x[None]) ** 2).sum(-1), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert recall == 1.0 if kind == "exact" else recall >= 0.9


def test_rag_caption_and_classify_report_examples(setup, capsys):
    root, _ = setup
    clip = str(root / "toy" / "clips" / "tone001.wav")
    assert (
        main(
            [
                "caption",
                clip,
                "--model",
                str(root / "model"),
                "--rag",
                str(root / "store"),
                "--shots",
                "2",
                "--json",
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )
    rec = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in rec["examples"]][0] == "t9" and len(rec["examples"]) == 2
    assert (
        main(
            [
                "classify",
                clip,
                "--labels",
                "a low hum,a high beep",
                "--model",
                str(root / "model"),
                "--rag",
                str(root / "store"),
                "--shots",
                "1",
                "--json",
            ]
        )
        == 0
    )
    rec = json.loads(capsys.readouterr().out)
    assert len(rec["examples"]) == 1 and rec["label"] in ("a low hum", "a high beep")


def test_embed_is_deterministic(setup, tmp_path, capsys):
    root, _ = setup
    clip = str(root / "toy" / "clips" / "tone003.wav")
    main(["embed", clip, "--model", str(root / "model")])
    a = json.loads(capsys.readouterr().out)
    main(["embed", clip, clip, "--model", str(root / "model"), "--out", str(tmp_path / "v.npy")])
    v = np.load(tmp_path / "v.npy")
    assert np.allclose(v[0], a["embedding"], atol=1e-6) and np.array_equal(v[0], v[1])
    assert abs(np.linalg.norm(v[0]) - 1) < 1e-5
