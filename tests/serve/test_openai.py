"""Issue 20: the API tells the truth to the official `openai` client (usage, finish reasons, stop,
logprobs, refused parameters, system messages, model names, n, seeded sampling batched or alone).

The bundled default model answers "What do you hear?" about the bundled clip in a few words (which
words depends on the model: the tests never name them); its last word gives stop sequences something
real to cut."""

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
import httpx  # noqa: E402

from tests.serve.helpers import Server, b64, example_b64, msg  # noqa: E402

NAME = "af-default"
ASK = "What do you hear?"


@pytest.fixture(scope="module")
def server(default_pipe):
    from audioflamingo.serve.app import ServeConfig, create_app

    srv = Server(create_app(default_pipe, ServeConfig(model_name=NAME, max_batch=8, window_ms=100)))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def clip():
    return example_b64()


def ask(client, clip, **kw):
    kw.setdefault("max_tokens", 64)
    return client.chat.completions.create(model=NAME, messages=msg(ASK, clip, "flac"), **kw)


def _prompt_tokens(pipe, system=None) -> int:
    from audioflamingo.text.templates import TASK_DESCRIPTIONS, render_dialogue, tokenize

    p = render_dialogue([(ASK, None)], pipe.tokenizer, task=system or TASK_DESCRIPTIONS["dialogue"], style=pipe.style)
    return len(tokenize(p, pipe.tokenizer)[0])


def _last_word(text: str) -> str:
    """The answer's last word, where a stop sequence cuts it (it must not begin the answer)."""
    word = text.split()[-1]
    assert len(text.split()) > 1 and not text.startswith(word), f"answer {text!r}: one word leaves nothing to cut"
    return word


def test_usage_counts_prompt_and_completion_tokens(client, clip, default_pipe):
    r = ask(client, clip)
    text = r.choices[0].message.content
    assert text.strip() and r.choices[0].finish_reason == "stop"
    answer_ids = default_pipe.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert r.usage.prompt_tokens == _prompt_tokens(default_pipe) > 5
    assert r.usage.completion_tokens == len(answer_ids) + 1  # the answer and its end token
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_include_usage_sends_a_last_chunk_with_usage(client, clip):
    whole = ask(client, clip)
    chunks = list(ask(client, clip, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason] == ["stop"]
    plain = list(ask(client, clip, stream=True))
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"


def test_finish_reason_length_when_max_tokens_cuts(client, clip):
    full = ask(client, clip).choices[0].message.content
    r = ask(client, clip, max_tokens=1)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 1
    assert full.startswith(r.choices[0].message.content) and len(r.choices[0].message.content) < len(full)
    last = list(ask(client, clip, max_tokens=1, stream=True))[-1]
    assert last.choices[0].finish_reason == "length"


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequences_cut_the_answer(client, clip, stream):
    full = ask(client, clip).choices[0].message.content
    word = _last_word(full)
    want = full[: full.index(word)]
    if stream:
        chunks = list(ask(client, clip, stop=[word, "zebra"], stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    else:
        r = ask(client, clip, stop=word)
        text, finish = r.choices[0].message.content, [r.choices[0].finish_reason]
        assert r.usage.completion_tokens < ask(client, clip).usage.completion_tokens  # generation stopped there
    assert text == want and finish == ["stop"]


def test_logprobs_and_top_logprobs(client, clip):
    r = ask(client, clip, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    text = r.choices[0].message.content
    assert "".join(t.token for t in content).strip() == text
    assert len(content) == r.usage.completion_tokens - 1  # every answer token; not the end token
    for t in content:
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert t.bytes == list(t.token.encode())
        assert math.isclose(t.logprob, t.top_logprobs[0].logprob, abs_tol=1e-5)  # greedy took the best
        assert sum(math.exp(a.logprob) for a in t.top_logprobs) <= 1 + 1e-5
    plain = ask(client, clip, logprobs=True)
    assert all(t.top_logprobs == [] for t in plain.choices[0].logprobs.content)
    assert ask(client, clip).choices[0].logprobs is None
    streamed = [
        t
        for c in ask(client, clip, logprobs=True, top_logprobs=2, stream=True)
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content
    ]
    assert [t.token for t in streamed] == [t.token for t in content]


@pytest.mark.parametrize(
    "param,value",
    [
        ("response_format", {"type": "json_object"}),
        ("tools", [{"type": "function", "function": {"name": "f"}}]),
        ("tool_choice", "auto"),
        ("logit_bias", {"5": 1}),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 1.0),
    ],
)
def test_unsupported_parameters_are_refused_by_name(client, clip, param, value):
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, clip, **{param: value})
    assert e.value.body["param"] == param and param in e.value.body["message"]


def test_response_format_text_is_what_it_always_does(client, clip):
    assert ask(client, clip, response_format={"type": "text"}).choices[0].message.content


def test_system_message_is_the_task_description(client, clip, default_pipe):
    system = "The task is to describe the instrument."
    r = client.chat.completions.create(
        model=NAME, max_tokens=64, messages=[{"role": "system", "content": system}, *msg(ASK, clip, "flac")]
    )
    assert r.usage.prompt_tokens == _prompt_tokens(default_pipe, system) != _prompt_tokens(default_pipe)
    with pytest.raises(openai.BadRequestError) as e:  # only before the conversation
        client.chat.completions.create(
            model=NAME, messages=[*msg(ASK, clip, "flac"), {"role": "system", "content": "x"}]
        )
    assert e.value.body["param"] == "messages[1].role"


def test_af1_style_model_refuses_system_messages():
    from audioflamingo.serve.errors import ApiError
    from audioflamingo.serve.request import parse_messages

    with pytest.raises(ApiError, match="system messages are not supported"):
        parse_messages([{"role": "system", "content": "x"}, *msg()], style="af1")


def test_model_names_are_checked_and_listed(client, clip, server):
    assert client.models.retrieve(NAME).id == NAME
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-4o")
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=msg(ASK, clip, "flac"))
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/v1/nope", 404),
        ("POST", "/v1/models", 405),
        ("GET", "/v1/chat/completions", 405),
        ("GET", "/nope", 404),
    ],
)
def test_every_error_is_openai_shaped(server, method, path, status):
    r = httpx.request(method, server.url + path)
    assert r.status_code == status
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and path in err["message"]


def test_n_choices_are_rows_of_one_batch(client, clip, server):
    before = httpx.get(server.url + "/health").json()["batches_run"]
    r = ask(client, clip, n=3, temperature=1.5, seed=7)
    after = httpx.get(server.url + "/health").json()
    assert [c.index for c in r.choices] == [0, 1, 2] and after["batches_run"] == before + 1
    alone = [ask(client, clip, temperature=1.5, seed=7 + i).choices[0].message.content for i in range(3)]
    assert [c.message.content for c in r.choices] == alone  # choice i samples with seed + i
    assert len(set(alone)) > 1
    greedy = ask(client, clip, n=2)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content
    assert greedy.usage.completion_tokens == 2 * ask(client, clip).usage.completion_tokens
    streamed = {}
    for c in ask(client, clip, n=3, temperature=1.5, seed=7, stream=True):
        for ch in c.choices:
            streamed[ch.index] = streamed.get(ch.index, "") + (ch.delta.content or "")
    assert [streamed[i] for i in range(3)] == alone
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, clip, n=9)
    assert e.value.body["param"] == "n" and "limit of 8" in e.value.body["message"]


def test_seeded_sampling_is_the_same_batched_or_alone(client, clip, server):
    kw = dict(temperature=1.2, top_p=0.9, seed=1234)
    alone = ask(client, clip, **kw).choices[0].message.content
    before = httpx.get(server.url + "/health").json()["largest_batch"]
    others = [b64(1.0 + 0.3 * i, 200 + 90 * i) for i in range(5)]
    gate = threading.Barrier(6)

    def one(i):
        gate.wait()
        if i == 0:
            return ask(client, clip, **kw).choices[0].message.content
        return (
            client.chat.completions.create(
                model=NAME, messages=msg(audio=others[i - 1]), max_tokens=32, temperature=0.8, seed=i
            )
            .choices[0]
            .message.content
        )

    with ThreadPoolExecutor(6) as ex:
        got = list(ex.map(one, range(6)))
    health = httpx.get(server.url + "/health").json()
    assert max(health["largest_batch"], before) > 1  # it really was batched with the others
    assert got[0] == alone


def test_n_is_limited_to_one_batch(default_pipe, clip):
    from audioflamingo.serve.app import ServeConfig, create_app

    srv = Server(create_app(default_pipe, ServeConfig(model_name=NAME, max_batch=2)))
    try:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        assert len(ask(c, clip, n=2).choices) == 2
        with pytest.raises(openai.BadRequestError) as e:
            ask(c, clip, n=3)
        assert e.value.body["param"] == "n" and "limit of 2" in e.value.body["message"]
    finally:
        srv.stop()


def test_a_conversation_longer_than_the_context_is_refused(client, clip, default_pipe):
    from audioflamingo.text.templates import render_dialogue, tokenize

    context = default_pipe.model.lm.config.max_position_embeddings
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=NAME, messages=msg("piano " * context, clip, "flac"), max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded" and e.value.body["param"] == "messages"
    question = "piano " * (context - 100)
    prompt = len(
        tokenize(render_dialogue([(question.strip(), None)], default_pipe.tokenizer), default_pipe.tokenizer)[0]
    )
    fits = context - prompt
    assert 0 < fits < 100
    ok = client.chat.completions.create(model=NAME, messages=msg(question, clip, "flac"), max_tokens=fits)
    assert ok.usage.prompt_tokens == prompt  # the whole context is usable
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=NAME, messages=msg(question, clip, "flac"), max_tokens=fits + 1)
