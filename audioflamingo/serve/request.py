"""Reading a chat-completions request: JSON, parameters and messages, each fault a 400 naming its field.

Parameters are checked by a strict pydantic model (no string-to-number coercion, no NaN or infinity,
no unknown fields); what OpenAI defines but this server does not do (tools, response_format other
than text, penalties, logit_bias, ...) is refused by name rather than silently ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audioflamingo.serve.errors import ApiError

MAX_STOP = 4  # OpenAI's limit
MAX_TOP_LOGPROBS = 20

# Fields OpenAI defines that this server cannot honour, with why (a client must not believe they worked).
UNSUPPORTED = {
    "tools": "tool calling is not supported by this model",
    "tool_choice": "tool calling is not supported by this model",
    "functions": "function calling is not supported by this model",
    "function_call": "function calling is not supported by this model",
    "parallel_tool_calls": "tool calling is not supported by this model",
    "logit_bias": "logit_bias is not supported",
    "audio": "audio output is not supported (the model writes text)",
    "modalities": "only text output is supported",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported",
    "reasoning_effort": "this model has no reasoning modes",
    "best_of": "best_of is not supported; use n",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class StreamOptions(_Strict):
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str


class Params(_Strict):
    model: str
    messages: list[Any] = Field(min_length=1)  # shape checked by parse_messages, with its own messages
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1)  # extension (vLLM's): 0 or -1 = off
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    n: int | None = Field(None, ge=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None  # an end-user id for the caller's logs; nothing to do here


@dataclass
class ChatRequest:
    model: str
    turns: list  # [(user, assistant | None)]
    system: str | None
    audio_b64: str
    audio_format: str | None
    audio_param: str  # where the clip is in the request, for error messages
    max_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    top_k: int
    seed: int | None
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)
    top_logprobs: int | None = None  # None: no logprobs; 0..20: that many alternatives per token


def parse_json(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {err.start})") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise ApiError(
            400, f"request body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
        ) from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _param(loc: tuple) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _validate(body: dict) -> Params:
    for name, why in UNSUPPORTED.items():
        if body.get(name) is not None:
            raise ApiError(400, f"{name} is not supported: {why}", name, "unsupported_parameter")
    try:
        return Params.model_validate(body)
    except ValidationError as err:
        e = err.errors()[0]
        # pydantic names the union's branch in loc ("stop.str"); keep the request's own path
        loc = tuple(p for p in e["loc"] if p not in ("str", "list[str]", "int", "float", "bool"))
        name = _param(loc) or None
        if e["type"] == "extra_forbidden":
            raise ApiError(400, f"unrecognized request argument: {name}", name, "unsupported_parameter") from None
        if e["type"] == "missing":
            raise ApiError(400, f"{name} is required", name, "missing_required_parameter") from None
        got = e.get("input")
        shown = json.dumps(got)[:60] if isinstance(got, (int, float, str, bool, type(None))) else type(got).__name__
        raise ApiError(
            400, f"{name}: {e['msg'][0].lower()}{e['msg'][1:]} (got {shown})", name, "invalid_value"
        ) from None


def parse_request(body: dict, max_tokens_limit: int, max_n: int, style: str = "paper") -> ChatRequest:
    p = _validate(body)
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(p, name):
            raise ApiError(400, f"{name} is not supported (only 0)", name, "unsupported_parameter")
    if p.response_format is not None and p.response_format.type != "text":
        raise ApiError(
            400,
            f"response_format {p.response_format.type!r} is not supported (only 'text')",
            "response_format",
            "unsupported_parameter",
        )
    max_tokens = p.max_completion_tokens or p.max_tokens or min(128, max_tokens_limit)
    which = "max_completion_tokens" if p.max_completion_tokens else "max_tokens"
    if max_tokens > max_tokens_limit:
        raise ApiError(
            400, f"{which} is {max_tokens}, over this server's limit of {max_tokens_limit}", which, "invalid_value"
        )
    n = p.n or 1
    if n > max_n:
        raise ApiError(400, f"n is {n}, over this server's limit of {max_n}", "n", "invalid_value")
    stops = [p.stop] if isinstance(p.stop, str) else list(p.stop or [])
    if len(stops) > MAX_STOP:
        raise ApiError(400, f"stop has {len(stops)} sequences, at most {MAX_STOP} are allowed", "stop", "invalid_value")
    if any(s == "" for s in stops):
        raise ApiError(400, "stop sequences must not be empty", "stop", "invalid_value")
    if p.top_logprobs is not None and not p.logprobs:
        raise ApiError(400, "top_logprobs needs logprobs: true", "top_logprobs", "invalid_value")
    if p.stream_options is not None and not p.stream:
        raise ApiError(400, "stream_options is only allowed with stream: true", "stream_options", "invalid_value")
    turns, system, (audio, fmt, audio_param) = parse_messages(p.messages, style)
    temperature = 1.0 if p.temperature is None else p.temperature
    top_p = 1.0 if p.top_p is None else p.top_p
    top_k = max(p.top_k or 0, 0)
    # Greedy unless a sampling parameter is given (reproducible by default); temperature 0 is greedy.
    sample = temperature > 0 and (p.temperature is not None or top_p < 1.0 or top_k > 0)
    return ChatRequest(
        model=p.model,
        turns=turns,
        system=system,
        audio_b64=audio,
        audio_format=fmt,
        audio_param=audio_param,
        max_tokens=max_tokens,
        do_sample=sample,
        temperature=temperature if sample else 1.0,
        top_p=top_p,
        top_k=top_k,
        seed=p.seed,
        n=n,
        stream=bool(p.stream),
        include_usage=bool(p.stream_options and p.stream_options.include_usage),
        stop=stops,
        top_logprobs=(p.top_logprobs or 0) if p.logprobs else None,
    )


def parse_messages(msgs: list, style: str = "paper"):
    """-> (dialogue turns [(user, assistant|None)], system text or None, (base64 audio, format, its field))."""
    audio, turns, pending, system = None, [], None, []
    for n, m in enumerate(msgs):
        where = f"messages[{n}]"
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
            raise ApiError(400, f"{where} needs a role of system, user or assistant", f"{where}.role")
        for key in ("tool_calls", "function_call", "audio", "refusal"):
            if m.get(key) is not None:
                raise ApiError(400, f"{where}.{key} is not supported", f"{where}.{key}", "unsupported_parameter")
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ApiError(400, f"{where}.content must be a string or a list of parts", f"{where}.content")
        text = []
        for k, part in enumerate(parts):
            at = f"{where}.content[{k}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise ApiError(400, f"{at}.text must be a string", f"{at}.text")
                text.append(part["text"])
            elif kind == "input_audio":
                if m["role"] != "user":
                    raise ApiError(400, f"{at}: input_audio belongs in a user message", at)
                ia = part.get("input_audio")
                if audio is not None:
                    raise ApiError(400, f"{at}: one audio clip per conversation is supported", at)
                if not isinstance(ia, dict) or not isinstance(ia.get("data"), str):
                    raise ApiError(400, f"{at}: input_audio.data must be base64 audio", f"{at}.input_audio.data")
                fmt = ia.get("format")
                if fmt is not None and not isinstance(fmt, str):
                    raise ApiError(400, f"{at}: input_audio.format must be a string", f"{at}.input_audio.format")
                audio = (ia["data"], fmt, f"{at}.input_audio.data")
            elif kind in ("audio_url", "file", "image_url"):
                raise ApiError(400, f"{at}: {kind} parts are not accepted; send input_audio as base64", f"{at}.type")
            else:
                raise ApiError(400, f"{at}: unknown content part type {kind!r}", f"{at}.type")
        text = " ".join(t for t in text if t).strip()
        if m["role"] in ("system", "developer"):
            if turns or pending is not None:
                raise ApiError(400, f"{where}: a system message must come before the conversation", f"{where}.role")
            if style == "af1":
                raise ApiError(
                    400,
                    f"{where}: this model's prompt (af1 style) has a fixed task description; "
                    "system messages are not supported",
                    f"{where}.role",
                    "unsupported_parameter",
                )
            system.append(text)
        elif m["role"] == "user":
            pending = text if pending is None else f"{pending} {text}".strip()
        else:
            if pending is None:
                raise ApiError(400, f"{where}: an assistant message must follow a user message", f"{where}.role")
            turns.append((pending, text))
            pending = None
    if pending is None:
        raise ApiError(400, "the last message must be from the user", "messages")
    if audio is None:
        raise ApiError(400, "the conversation has no input_audio part", "messages")
    turns.append((pending or "Describe the sound.", None))
    return turns, " ".join(s for s in system if s) or None, audio
