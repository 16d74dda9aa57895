"""How every `audioflamingo` parser formats its help: defaults shown, and an example per command.

The examples live here, keyed by the command's words, so each command's `--help` ends with one
without every `add_parser` call repeating the plumbing.
"""

from __future__ import annotations

import argparse

EXAMPLES = {
    "caption": "audioflamingo caption a.wav b.flac --model DIR --json",
    "ask": 'audioflamingo ask a.wav "What comes after the violin?"',
    "classify": 'audioflamingo classify a.wav --labels piano,organ,violin --question "Which instrument is playing?"',
    "chat": "audioflamingo chat a.wav",
    "init": "audioflamingo init --preset tiny --out my-model",
    "serve": "audioflamingo serve --model DIR --port 8000",
    "demo": "audioflamingo demo --json",
    "info": "audioflamingo info --model DIR --json",
    "eval": "audioflamingo eval clotho-v2 --model DIR --data clotho/",
    "eval list": "audioflamingo eval list --json",
    "eval report": "audioflamingo eval report runs/eval/* --out runs/eval/report",
    "index": "audioflamingo index build train.jsonl --out store/",
    "index build": "audioflamingo index build train.jsonl --out store/ --kind hnsw",
    "index add": "audioflamingo index add more.jsonl --index store/",
    "index query": "audioflamingo index query clip.wav --index store/ -k 8",
    "embed": "audioflamingo embed a.wav b.wav --out vectors.npy",
    "clap": "audioflamingo clap zero-shot a.wav --labels dog,cat,rain --model runs/clap/final",
    "clap train": "audioflamingo clap train recipes/clap-toy.yaml",
    "clap zero-shot": "audioflamingo clap zero-shot a.wav b.wav --labels dog,cat,rain --model DIR",
    "clap search": "audioflamingo clap search --model DIR --text 'a dog barks' --index store/ -k 5",
    "clap import": "audioflamingo clap import laion-clap-hf/ --out my-clap",
    "convert": "audioflamingo convert af2 --checkpoint ckpt/ --lm qwen/ --clap clap/ --out af2-model",
    "train": "audioflamingo train recipes/tiny-toy.yaml --dry-run",
    "average": "audioflamingo average runs/a/final runs/b/final --out runs/soup",
    "data": "audioflamingo data validate train.jsonl",
}


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions/epilogs as written; `(default: X)` after every option that has a default and
    whose help does not already state it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
            or "default" in text.lower()
        ):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """Every parser and sub-parser (add_subparsers reuses this class) gets `Formatter` and, when
    EXAMPLES has its command, an example line after the options."""

    def __init__(self, *args, **kwargs):
        # The plain raw-description formatter some commands ask for becomes this one (it is raw too).
        if kwargs.get("formatter_class") in (None, argparse.RawDescriptionHelpFormatter, argparse.HelpFormatter):
            kwargs["formatter_class"] = Formatter
        super().__init__(*args, **kwargs)
        words = self.prog.split()[1:]
        example = EXAMPLES.get(" ".join(words))
        if example and (not self.epilog or example not in self.epilog):
            self.epilog = (self.epilog + "\n\n" if self.epilog else "") + f"example:\n  {example}"
