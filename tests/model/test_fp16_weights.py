"""fp16 decode weights (model/fp16_weights.py): the fbgemm ops they stand on, what they compute, and
that batched output still equals one-by-one output."""

import platform

import pytest
import torch

from audioflamingo.model import fp16_weights
from audioflamingo.model.fp16_weights import Fp16Linear, available, wanted
from audioflamingo.model.lite import LiteCausalLM
from audioflamingo.tasks import left_pad
from tests.conftest import tiny_lm

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") and not available(),
    reason="fbgemm's fp16 linear is part of x86 torch builds",
)


def test_torch_still_has_the_fbgemm_fp16_ops():
    # Not in torch's documented Python API: if a torch release drops or renames them, this fails
    # here rather than models silently decoding in fp32.
    assert available()
    assert hasattr(torch.ops.quantized, "linear_prepack_fp16")
    assert hasattr(torch.ops.quantized, "linear_dynamic_fp16")


def test_fp16_linear_is_a_linear_with_fp16_rounded_weights():
    torch.manual_seed(0)
    w, b = torch.randn(48, 32), torch.randn(48)
    x = torch.randn(3, 5, 32)
    got = Fp16Linear(w, b)(x)
    rounded = torch.nn.functional.linear(x, w.half().float(), b)
    torch.testing.assert_close(got, rounded, atol=1e-4, rtol=1e-4)
    # ... and not the fp32 product: the rounding is really there (so the test above can fail).
    assert (got - torch.nn.functional.linear(x, w, b)).abs().max() > 1e-5


def _lite_pair(family="llama", seed=0):
    hf = tiny_lm(family, 300)
    ref = LiteCausalLM(hf.config.to_dict()).eval()
    ref.load_state_dict(hf.state_dict(), strict=True)
    fp16 = LiteCausalLM(hf.config.to_dict()).eval()
    fp16.load_state_dict(hf.state_dict(), strict=True)
    assert fp16.use_fp16_weights(True)
    return ref, fp16


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_logits_equal_a_model_whose_linear_weights_are_rounded_to_fp16(family):
    ref, fp16 = _lite_pair(family)
    tied = ref.lm_head.weight is ref.model.embed_tokens.weight
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if p.dim() == 2 and "embed" not in name:  # every linear weight
                p.copy_(p.half().float())
    if tied:  # fp16 mode leaves the embedding in fp32 for the input lookup: round a head copy only
        ref.lm_head.weight = torch.nn.Parameter(ref.model.embed_tokens.weight.detach().half().float())
    torch.manual_seed(1)
    ids, mask = left_pad([torch.randint(5, 300, (n,)).tolist() for n in (7, 12, 3)], 0, "cpu")
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        a = ref(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        b = fp16(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    real = mask.bool()
    torch.testing.assert_close(b[real], a[real], atol=1e-4, rtol=1e-4)


def test_batched_greedy_equals_one_by_one():
    _, fp16 = _lite_pair()
    torch.manual_seed(2)
    rows = [torch.randint(5, 300, (n,)).tolist() for n in (9, 4, 13)]
    ids, mask = left_pad(rows, 0, "cpu")
    batched = fp16.generate(ids, mask, max_new_tokens=10, eos_token_id=None, pad_token_id=0)
    for i, r in enumerate(rows):
        one, m1 = left_pad([r], 0, "cpu")
        single = fp16.generate(one, m1, max_new_tokens=10, eos_token_id=None, pad_token_id=0)
        assert batched[i, -10:].tolist() == single[0, -10:].tolist()


def test_follows_dtype_changes_and_new_weights():
    ref, fp16 = _lite_pair()
    ids = torch.randint(5, 300, (1, 6))
    kept = fp16.fp16_head
    fp16.to("cpu", torch.float32)  # moves nothing: the copies are kept, not packed again
    assert fp16.fp16_head is kept
    fp16.to(torch.bfloat16)  # fp16 packing is for fp32 weights on CPU only: dropped
    assert fp16.fp16_head is None and fp16.model.layers[0].mlp.fp16 is None
    fp16.to(torch.float32)
    assert not fp16.use_fp16_weights(False)
    assert fp16.use_fp16_weights(True)
    # New weights loaded afterwards reach the fp16 copies (they are rebuilt, not stale).
    torch.manual_seed(3)
    new = {k: torch.randn_like(v) * 0.05 for k, v in ref.state_dict().items()}
    ref.load_state_dict(new)
    fp16.load_state_dict(new)
    with torch.no_grad():
        torch.testing.assert_close(fp16(input_ids=ids).logits, ref(input_ids=ids).logits, atol=2e-3, rtol=2e-3)


def test_setting_comes_from_the_config_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv(fp16_weights.CPU_LM_WEIGHTS_ENV, raising=False)
    assert wanted("float16") == "float16" and wanted("float32") == "float32"
    monkeypatch.setenv(fp16_weights.CPU_LM_WEIGHTS_ENV, "float32")
    assert wanted("float16") == "float32"
    monkeypatch.setenv(fp16_weights.CPU_LM_WEIGHTS_ENV, "half")
    with pytest.raises(ValueError, match="float32 or float16"):
        wanted("float32")


def test_a_model_directory_opts_in_through_its_config(tmp_path, monkeypatch):
    from audioflamingo.config import AudioFlamingoConfig
    from audioflamingo.model.flamingo import AudioFlamingo
    from tests.conftest import make_model

    monkeypatch.delenv(fp16_weights.CPU_LM_WEIGHTS_ENV, raising=False)
    model, tok = make_model("llama")
    model.save_pretrained(tmp_path, tokenizer=tok)
    plain = AudioFlamingo.from_pretrained(tmp_path, lite=True)
    assert plain.lm.fp16_head is None
    cfg = AudioFlamingoConfig.load(tmp_path / "config.json")
    cfg.cpu_lm_weights = "float16"
    cfg.save(tmp_path / "config.json")
    assert AudioFlamingo.from_pretrained(tmp_path, lite=True).lm.fp16_head is not None
    monkeypatch.setenv(fp16_weights.CPU_LM_WEIGHTS_ENV, "float32")
    assert AudioFlamingo.from_pretrained(tmp_path, lite=True).lm.fp16_head is None
