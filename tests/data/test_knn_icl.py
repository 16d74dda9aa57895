import json

import numpy as np

from audioflamingo.data.mixture import MixtureSampler
from audioflamingo.retrieval.knn import knn_excluding_groups


def _brute(x, k, groups):
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    g = np.asarray(groups)
    d[g[:, None] == g[None]] = np.inf
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def test_knn_is_exact_and_never_returns_self_or_same_group():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    groups = [f"rec{i // 3}" for i in range(300)]  # three segments per recording
    nb = knn_excluding_groups(x, 8, groups)
    assert np.array_equal(nb.ids, _brute(x, 8, groups))
    for i, row in enumerate(nb.ids):
        assert i not in row and all(groups[j] != groups[i] for j in row)
    assert np.all(np.diff(nb.distances, axis=1) >= 0)


def test_knn_approximate_mode_recall():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    groups = [str(i) for i in range(3000)]
    exact = knn_excluding_groups(x, 10, groups)
    approx = knn_excluding_groups(x, 10, groups, exact_limit=100)  # forces HNSW
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.ids, approx.ids)])
    assert recall >= 0.95 and not any(i in row for i, row in enumerate(approx.ids))


def test_mixture_follows_weights_deterministically_and_resumes():
    s = MixtureSampler([100, 50, 10], [3.0, 1.0, 0.0], epoch_size=4000, seed=7)
    draws = s.take(4000)
    share = np.bincount([d for d, _ in draws], minlength=3) / 4000
    assert abs(share[0] - 0.75) < 0.03 and abs(share[1] - 0.25) < 0.03 and share[2] == 0
    first = [i for d, i in draws if d == 1][:50]
    assert sorted(first) == list(range(50))  # a full pass before any repeat
    a = MixtureSampler([100, 50, 10], [3, 1, 0], 4000, 7)
    a.take(123)
    st = a.state_dict()
    rest = a.take(50)
    b = MixtureSampler([100, 50, 10], [3, 1, 0], 4000, 7)
    b.load_state_dict(st)
    assert b.take(50) == rest == draws[123:173]


def test_build_icl_caches_embeddings_and_feeds_interleaved_training(tmp_path, capsys):
    from audioflamingo.cli import main
    from audioflamingo.data.icl import icl_path
    from audioflamingo.data.manifest import load_manifest
    from audioflamingo.data.samples import render_record
    from audioflamingo.presets import build
    from audioflamingo.data.toy import losses, write_recipe, write_toy

    m = write_toy(tmp_path / "toy", n=12)
    enc = tmp_path / "enc"
    model, tok = build("tiny")
    model.save_pretrained(enc, tok)
    assert main(["data", "build-icl", str(m), "--k", "3", "--encoder", str(enc)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["newly_computed"] == 12
    assert main(["data", "build-icl", str(m), "--k", "3", "--encoder", str(enc)]) == 0
    assert json.loads(capsys.readouterr().out)["newly_computed"] == 0  # never recomputed on rerun
    nb = [json.loads(l) for l in icl_path(m).read_text().splitlines()]
    assert all(len(r["neighbours"]) == 3 and r["id"] not in r["neighbours"] for r in nb)
    recs = {r.id: r for r in load_manifest(m)}
    # tone i and tone i+8 share a pitch: their embeddings are nearest to each other
    assert nb[0]["neighbours"][0] == "t8"
    rendered, refs = render_record(recs["t0"], tok, [recs["t8"], recs["t1"]])
    assert rendered.text.count("<audio>") == 3 and len(refs) == 3
    assert [t for t, target in rendered.segments if target].count("<EOC>") == 3  # loss on every output
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=3, icl_shots=2)
    assert main(["train", str(r), "--no-progress"]) == 0
    assert sorted(losses(tmp_path / "run")) == [1, 2, 3]
