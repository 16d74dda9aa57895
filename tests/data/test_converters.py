"""Each converter on tiny fixtures written in the dataset's exact published layout."""

import numpy as np
import soundfile as sf

from audioflamingo.cli import main
from audioflamingo.data.manifest import load_manifest


def _wav(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(p, (0.1 * np.ones(800)).astype(np.float32), 16000)


def _csv(p, text):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_clotho(tmp_path):
    _wav(tmp_path / "development" / "Bird song.wav")
    _csv(
        tmp_path / "clotho_captions_development.csv",
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        'Bird song.wav,Birds sing.,A bird chirps.,"Birds, many.",Chirping.,Song of birds.\n'
        "gone.wav,a,b,c,d,e\n",
    )
    out = tmp_path / "m" / "clotho.jsonl"
    assert (
        main(
            [
                "data",
                "convert",
                "clotho",
                "--csv",
                str(tmp_path / "clotho_captions_development.csv"),
                "--audio-dir",
                str(tmp_path / "development"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    recs = load_manifest(out)
    assert [r.output for r in recs][2] == "Birds, many." and len(recs) == 5
    assert recs[0].audio.resolve() == (tmp_path / "development" / "Bird song.wav").resolve()
    assert {r.group for r in recs} == {"Bird song.wav"}


def test_audiocaps(tmp_path):
    _wav(tmp_path / "audio" / "Y7fmOlUlwoNg.wav")
    _wav(tmp_path / "audio" / "91139.flac")
    _csv(
        tmp_path / "train.csv",
        "audiocap_id,youtube_id,start_time,caption\n"
        "91139,r1nicOVtvkQ,130,A woman talks nearby as water pours\n"
        "58146,7fmOlUlwoNg,20,Multiple clanging and clanking sounds\n"
        "11111,missingone,0,nothing\n",
    )
    out = tmp_path / "ac.jsonl"
    assert (
        main(
            [
                "data",
                "convert",
                "audiocaps",
                "--csv",
                str(tmp_path / "train.csv"),
                "--audio-dir",
                str(tmp_path / "audio"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    recs = load_manifest(out)
    assert [r.id for r in recs] == ["91139", "58146"] and recs[1].audio.name == "Y7fmOlUlwoNg.wav"


def test_clotho_aqa(tmp_path):
    _wav(tmp_path / "audio_files" / "a.wav")
    _csv(
        tmp_path / "clotho_aqa_train.csv",
        "file_name,QuestionText,answer,confidence\na.wav,Are there birds?,yes,yes\na.wav,Is it raining?,no,maybe\n",
    )
    out = tmp_path / "aqa.jsonl"
    assert (
        main(
            [
                "data",
                "convert",
                "clothoaqa",
                "--csv",
                str(tmp_path / "clotho_aqa_train.csv"),
                "--audio-dir",
                str(tmp_path / "audio_files"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    recs = load_manifest(out)
    assert [(r.task, r.instruction, r.output) for r in recs] == [
        ("aqa", "Are there birds?", "yes"),
        ("aqa", "Is it raining?", "no"),
    ]


def test_esc50(tmp_path):
    _wav(tmp_path / "audio" / "1-100032-A-0.wav")
    _wav(tmp_path / "audio" / "2-100038-A-14.wav")
    _csv(
        tmp_path / "meta" / "esc50.csv",
        "filename,fold,target,category,esc10,src_file,take\n"
        "1-100032-A-0.wav,1,0,dog,True,100032,A\n2-100038-A-14.wav,2,14,chirping_birds,False,100038,A\n",
    )
    out = tmp_path / "esc.jsonl"
    assert main(["data", "convert", "esc50", "--root", str(tmp_path), "--folds", "2", "--out", str(out)]) == 0
    recs = load_manifest(out)
    assert len(recs) == 1 and recs[0].output == "chirping birds" and recs[0].options == ["chirping birds", "dog"]
    assert recs[0].task == "classify" and recs[0].source == "100038"


def test_urbansound8k(tmp_path):
    _wav(tmp_path / "audio" / "fold5" / "100032-3-0-0.wav")
    _csv(
        tmp_path / "metadata" / "UrbanSound8K.csv",
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100032-3-0-0.wav,100032,0.0,0.317551,1,5,3,dog_bark\n"
        "100263-2-0-117.wav,100263,58.5,62.5,1,5,2,children_playing\n",
    )
    out = tmp_path / "us.jsonl"
    assert main(["data", "convert", "urbansound8k", "--root", str(tmp_path), "--out", str(out)]) == 0
    recs = load_manifest(out)
    assert len(recs) == 1 and recs[0].output == "dog bark" and "children playing" in recs[0].options


def test_wrong_layout_names_the_expected_file(tmp_path, capsys):
    assert main(["data", "convert", "esc50", "--root", str(tmp_path), "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "meta/esc50.csv: expected metadata file not found" in capsys.readouterr().err
    _csv(tmp_path / "c.csv", "name,text\n")
    assert (
        main(
            [
                "data",
                "convert",
                "clotho",
                "--csv",
                str(tmp_path / "c.csv"),
                "--audio-dir",
                str(tmp_path),
                "--out",
                str(tmp_path / "x.jsonl"),
            ]
        )
        == 1
    )
    assert "missing column(s) file_name" in capsys.readouterr().err
