"""Tiny fixtures in each benchmark's exact public layout."""

import json
from pathlib import Path

import numpy as np
import soundfile as sf


def wav(p: Path, f: float = 440.0, seconds: float = 0.4):
    p.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(p, (0.4 * np.sin(2 * np.pi * f * t)).astype(np.float32), 16000)


def text(p: Path, s: str):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(s)


def write(name: str, root: Path) -> Path:
    r = root / name
    if name == "clotho-v2":
        rows = ["file_name,caption_1,caption_2,caption_3,caption_4,caption_5"]
        for i, (f, c) in enumerate([(220, "a low hum"), (880, "a high whistle"), (440, "a middle tone")]):
            wav(r / "evaluation" / f"clip {i}.wav", f)
            rows.append(f"clip {i}.wav,{c},{c} plays,the {c},{c} sounds,{c} is heard")
        text(r / "clotho_captions_evaluation.csv", "\n".join(rows) + "\n")
    elif name == "audiocaps":
        wav(r / "audio" / "Yabc.wav")
        wav(r / "audio" / "def_30.wav")
        text(
            r / "test.csv",
            "audiocap_id,youtube_id,start_time,caption\n1,abc,0,a bell rings\n2,abc,0,bells ring\n"
            "3,def,30,a man speaks\n4,ghi,0,missing clip\n",
        )
    elif name == "clotho-aqa":
        wav(r / "audio_files" / "a.wav")
        text(
            r / "clotho_aqa_test.csv",
            "file_name,QuestionText,answer,confidence\n"
            "a.wav,Is it loud?,yes,yes\na.wav,Is it loud?,yes,maybe\na.wav,Is it loud?,no,yes\n",
        )
    elif name == "cochlscene":
        for c in ("Bus", "Park"):
            wav(r / "Test" / c / f"{c}_1.wav")
    elif name == "nonspeech7k":
        wav(r / "test" / "x1.wav")
        wav(r / "test" / "x2.wav")
        text(r / "metadata of test set.csv", "Filename,Classname\nx1.wav,breath\nx2.wav,cough\n")
    elif name.startswith("nsynth"):
        meta = {
            "guitar_acoustic_000-060-075": {
                "instrument_family_str": "guitar",
                "instrument_source_str": "acoustic",
                "qualities_str": ["bright", "percussive"],
            },
            "keyboard_electronic_001-021-127": {
                "instrument_family_str": "keyboard",
                "instrument_source_str": "electronic",
                "qualities_str": ["dark"],
            },
        }
        text(r / "nsynth-test" / "examples.json", json.dumps(meta))
        for k in meta:
            wav(r / "nsynth-test" / "audio" / f"{k}.wav")
    elif name == "urbansound8k":
        wav(r / "audio" / "fold10" / "7061-6-0-0.wav")
        text(
            r / "metadata" / "UrbanSound8K.csv",
            "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
            "7061-6-0-0.wav,7061,0.0,0.5,1,10,6,gun_shot\n100-1-0-0.wav,100,0,1,1,10,1,car_horn\n",
        )
    elif name == "gtzan":
        for g in ("blues", "jazz"):
            wav(r / "genres" / g / f"{g}.00000.wav")
    elif name == "crema-d":
        wav(r / "AudioWAV" / "1001_DFA_ANG_XX.wav")
        wav(r / "AudioWAV" / "1002_IEO_SAD_HI.wav")
    elif name == "ravdess":
        wav(r / "Actor_01" / "03-01-05-01-02-01-01.wav")
        wav(r / "Actor_02" / "03-01-01-01-01-01-02.wav")
    elif name == "medley-solos-db":
        text(
            r / "Medley-solos-DB_metadata.csv",
            "subset,instrument,instrument_id,song_id,uuid4\n"
            "test,flute,3,1,aaa\ntraining,piano,4,2,bbb\ntest,violin,7,3,ccc\n",
        )
        wav(r / "audio" / "Medley-solos-DB_test-3_aaa.wav")
        wav(r / "audio" / "Medley-solos-DB_test-7_ccc.wav")
    elif name == "fsd50k":
        text(
            r / "FSD50K.ground_truth" / "eval.csv",
            'fname,labels,mids\n37199,"Electric_guitar,Guitar,Music",/m/02sgy\n175151,"Dog,Animal",/m/0bt9lr\n',
        )
        wav(r / "FSD50K.eval_audio" / "37199.wav")
        wav(r / "FSD50K.eval_audio" / "175151.wav")
    elif name == "musicaqa":
        rows = [
            {
                "video_id": "00000001",
                "question_id": 7,
                "type": '["Audio", "Counting"]',
                "question_content": "How many instruments are sounding in the video?",
                "templ_values": "[]",
                "anser": "two",
            },
            {
                "video_id": "00000002",
                "question_id": 8,
                "type": '["Audio", "Comparative"]',
                "question_content": "Is the <Object> more rhythmic than the <Object>?",
                "templ_values": '["piano", "violin"]',
                "anser": "yes",
            },
            {
                "video_id": "00000001",
                "question_id": 9,
                "type": '["Visual", "Counting"]',
                "question_content": "How many people are playing?",
                "templ_values": "[]",
                "anser": "one",
            },
        ]
        text(r / "avqa-test.json", json.dumps(rows))
        wav(r / "audio" / "00000001.wav")
        wav(r / "audio" / "00000002.wav")
    elif name.startswith("audio-dialogues-"):
        subset = "audioset" if name.endswith("audioset") else "musiccaps"
        dialogues = [
            {
                "audio_id": "Y1.wav",
                "dialogue": [
                    {"user": "What do you hear?", "assistant": "A dog barks."},
                    {"user": "Is it loud?", "assistant": "Yes, quite loud."},
                ],
            },
            {"audio_id": "Y2.wav", "dialogue": [{"user": "Describe it.", "assistant": "Rain on a roof."}]},
        ]
        text(r / f"dialogues_{subset}_thresholded.json", json.dumps(dialogues))
        wav(r / "Y1.wav")
        wav(r / "Y2.wav")
    else:
        raise ValueError(name)
    return r
