"""Which kernel packed attention uses, on every GPU our users have: the choice from capability,
dtype and head size, and the once-per-shape check that sends a kernel that raises or computes
wrongly, forward or backward, to the exact path with one warning. On the CPU, with stand-in
kernels. Then the CPU's own attention dropout."""

import re

import pytest
import torch
import torch.nn.functional as F

from datamodules.packing import rounding
from lightning_modules import attention_kernels
from lightning_modules.attention_kernels import Kernel, choose, kernel_for
from lightning_modules.classification import SequenceClassifier
from lightning_modules.kernel_check import self_check
from tests.helpers import padded_and_packed


def masked(q, k, v, mask, scale):
    """One SDPA over the whole row under `mask`, [tokens, heads, head dim] in and out."""
    q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale).transpose(0, 1)


def text_of_each_token(cu_seq_lens):
    return torch.repeat_interleave(torch.arange(len(cu_seq_lens) - 1), cu_seq_lens.diff().long())


def block_diagonal(q, k, v, cu_seq_lens, max_length, dropout, scale):
    """Exact, another way: one SDPA over the row with a mask that keeps each text to itself."""
    text = text_of_each_token(cu_seq_lens)
    return masked(q, k, v, text[:, None] == text[None, :], scale)


def whole_row(q, k, v, cu_seq_lens, max_length, dropout, scale):
    """Wrong: every text attends to every other."""
    return masked(q, k, v, None, scale)


def raises(*args):
    raise RuntimeError("FlashAttention forward only supports head dimension divisible by 8\nmore")


class OneAndAHalfTimesTheGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return 1.5 * grad


def wrong_backward(*args):
    """Exact forward; every gradient 1.5 times too large."""
    return OneAndAHalfTimesTheGradient.apply(block_diagonal(*args))


def no_empty_segment(q, k, v, cu_seq_lens, *args):
    """Exact, but refuses a repeated offset, as a kernel written for rows without one might."""
    if not cu_seq_lens.diff().all():
        raise RuntimeError("cu_seqlens must be strictly increasing")
    return block_diagonal(q, k, v, cu_seq_lens, *args)


def first_block_only(q, k, v, cu_seq_lens, max_length, dropout, scale):
    """Wrong past one kernel block: each text attends only to its first 128 keys."""
    text = text_of_each_token(cu_seq_lens)
    position = torch.arange(len(text)) - cu_seq_lens[text]
    return masked(q, k, v, (text[:, None] == text[None, :]) & (position[None, :] < 128), scale)


EXACT, WRONG, RAISING, WRONG_BACKWARD, NO_EMPTY_SEGMENT, FIRST_BLOCK_ONLY = (
    Kernel(name, run, has_dropout=False) for name, run in (
        ("block-diagonal", block_diagonal), ("whole row", whole_row), ("raising", raises),
        ("wrong backward", wrong_backward), ("no empty segment", no_empty_segment),
        ("first block only", first_block_only)))
FAILING = [  # each stand-in kernel that fails the check, and what the check says (a pattern)
    (WRONG, "its output is"),
    (RAISING, "it raised RuntimeError: FlashAttention forward only supports head dimension divisible by 8"),
    (WRONG_BACKWARD, "its backward's gradient of q is 0.5 from SDPA's in fp32"),
    (NO_EMPTY_SEGMENT, "it raised RuntimeError: cu_seqlens must be strictly increasing"),
    (FIRST_BLOCK_ONLY, "its output is .* on a text of 300 tokens"),
]


def by_name(cases: list[tuple]) -> list:
    return [pytest.param(*case, id=case[0].name) for case in cases]


FP16, BF16, FP32 = torch.float16, torch.bfloat16, torch.float32


@pytest.mark.parametrize("device, capability, dtype, head_dim, kernels, reason", [
    ("cuda", (9, 0), BF16, 64, (EXACT, WRONG), "supported"),  # H100/H200, BERT's head size
    ("cuda", (8, 0), FP16, 32, (EXACT,), "supported"),  # A100, MiniLM's head size
    ("cuda", (8, 6), FP16, 256, (EXACT,), "supported"),  # RTX 30x0, the largest head size
    ("cpu", None, FP32, 64, (EXACT,), "CUDA only, not cpu"),
    ("cuda", (9, 0), FP32, 64, (EXACT,), "16-bit inputs, not torch.float32"),  # 32-true on a GPU
    ("cuda", (7, 5), FP16, 64, (EXACT,), "8.0 (Ampere) or newer, not 7.5"),  # T4, GTX 1650 Ti
    ("cuda", (7, 0), FP16, 64, (EXACT,), "8.0 (Ampere) or newer, not 7.0"),  # V100
    ("cuda", (9, 0), BF16, 26, (EXACT,), "multiple of 8 up to 256, this model's is 26"),  # TinyBERT
    ("cuda", (9, 0), BF16, 512, (EXACT,), "multiple of 8 up to 256, this model's is 512"),
    ("cuda", (9, 0), BF16, 64, (), "neither flash-attn nor torch's varlen kernel"),
])
def test_the_kernel_is_chosen_from_what_the_device_and_model_can_do(device, capability, dtype, head_dim,
                                                                  kernels, reason):
    kernel, why = choose(device, capability, dtype, head_dim, kernels)
    assert kernel is (kernels[0] if reason == "supported" else None)
    assert reason in why


@pytest.mark.parametrize("kernel, problem", by_name([(EXACT, None), *FAILING]))
def test_the_check_passes_an_exact_kernel_and_names_what_is_wrong_with_others(kernel, problem):
    with torch.inference_mode():  # the first packed batch may be a validation's: gradients still checked
        found = self_check(kernel, torch.device("cpu"), FP32, heads=2, head_dim=8)
    assert found == problem if problem is None else re.search(problem, found), found


@pytest.fixture
def offered(monkeypatch):
    """Makes `kernel_for` offer a given stand-in kernel on the CPU, as it would on a GPU."""
    def offer(kernel: Kernel) -> None:
        monkeypatch.setattr(attention_kernels, "installed_kernels", lambda: (kernel,))
        monkeypatch.setattr(attention_kernels, "choose", lambda *args: (args[-1][0], "supported"))
        kernel_for.cache_clear()
    yield offer
    kernel_for.cache_clear()


def default_layout() -> tuple[dict, dict]:
    """A padded batch and the same texts packed as training packs them by default: an unrounded
    row that ends in an empty closing segment."""
    padded, packed = padded_and_packed(multiple=rounding(compiling=False))
    assert packed["cu_seq_lens_q"][-1] == packed["cu_seq_lens_q"][-2]
    return padded, packed


@pytest.mark.parametrize("kernel, problem", by_name(FAILING))
def test_a_kernel_that_fails_its_check_leaves_packed_training_exact_with_one_warning(
        kernel, problem, offered, tiny_bert, caplog):
    offered(kernel)
    module = SequenceClassifier(tiny_bert, ["neg", "pos"]).eval()  # no dropout: padded and packed agree
    trainable = [p for p in module.model.parameters() if p.requires_grad]
    padded, packed = default_layout()
    results = []
    with caplog.at_level("WARNING"):
        with torch.inference_mode():
            module(packed)  # the check runs in the first packed batch, here a validation's
        for batch in (padded, packed, packed):  # then training steps: the reference, then packed twice
            out = module.outputs(batch)
            results.append((out.logits, torch.autograd.grad(out.loss, trainable)))
    (expected, expected_grads), *packed_results = results
    for logits, grads in packed_results:
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
        for a, b in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    warnings = [r.message for r in caplog.records if "failed its check" in r.message]
    assert len(warnings) == 1 and kernel.name in warnings[0] and "exact per-text attention" in warnings[0]
    assert re.search(problem, warnings[0])


def test_a_kernel_that_passes_its_check_runs_every_packed_attention(offered, tiny_bert):
    calls = []
    spy = Kernel("spy", lambda *args: calls.append(1) or block_diagonal(*args), has_dropout=False)
    offered(spy)
    module = SequenceClassifier(tiny_bert, ["neg", "pos"]).eval()
    padded, packed = default_layout()
    with torch.no_grad():
        torch.testing.assert_close(module(packed), module(padded), rtol=1e-5, atol=1e-5)
    layers = module.model.config.num_hidden_layers
    assert len(calls) == 1 + layers  # the check, then each layer


def test_attention_dropout_on_the_cpu_drops_at_its_rate_and_follows_the_seed():
    torch.manual_seed(0)
    kept = attention_kernels.keep_mask((1000, 1000), 0.1)
    assert abs((1 - kept.float().mean().item()) - 0.1) < 1.5e-3  # 5 standard errors of 1e6 draws
    torch.manual_seed(0)
    assert torch.equal(attention_kernels.keep_mask((1000, 1000), 0.1), kept)
    assert not torch.equal(attention_kernels.keep_mask((1000, 1000), 0.1), kept)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_attention_dropout_on_the_cpu_scales_by_the_rate_it_drops_at(rate):
    """0.1 and 0.3 are no multiples of 2^-16: the mask drops at the rounded rate, so the kept
    probabilities are scaled by 1/(1 - rounded rate), not 1/(1 - rate) (6.8e-6 and 4.4e-6 apart)."""
    rounded = attention_kernels.dropped_of(rate) / 2**attention_kernels.DROPOUT_BITS
    assert rounded != rate
    torch.manual_seed(0)
    n = 256  # equal scores give each probability 1/256 exactly, and one-hot values carry it to the output
    zeros = torch.zeros(4, 4, n, 8)
    out = attention_kernels.sdpa(zeros, zeros, torch.eye(n).expand(4, 4, n, n), None, rate, None)
    kept = out != 0
    standard_error = (rounded * (1 - rounded) / out.numel()) ** 0.5
    assert abs((1 - kept.double().mean().item()) - rounded) < 5 * standard_error
    scale = out[kept] * n
    torch.testing.assert_close(scale, torch.full_like(scale, 1 / (1 - rounded)), rtol=2.5e-7, atol=0)
    # unbiased: a 16-bit draw keeps with probability exactly 1 - rounded, times the scale, is 1
    assert abs((1 - rounded) * scale.double() - 1).max() < 2.5e-7


def test_attention_dropout_on_the_cpu_is_the_math_of_sdpa_with_its_mask():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, requires_grad=True) for _ in range(3))
    real = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])[:, None, None, :]
    state = torch.get_rng_state()
    out = attention_kernels.sdpa(q, k, v, real, 0.25, None)
    torch.set_rng_state(state)
    kept = attention_kernels.keep_mask((2, 3, 7, 7), 0.25)
    assert kept.any() and not kept.all()
    scores = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~real, float("-inf"))
    expected = (scores.softmax(-1) * kept / 0.75) @ v
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    for a, b in zip(grads, torch.autograd.grad(expected.square().sum(), (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", list(attention_kernels.LAYOUTS))
def test_under_attention_dropout_a_packed_text_attends_only_to_itself(layout):
    torch.manual_seed(0)
    bounds = [0, 5, 17, 18]
    q, k, v = (torch.randn(1, 2, 18, 8) for _ in range(3))
    other = v.clone()
    other[:, :, 5:] += 1.0  # the second and third texts' values change
    first = []
    for values in (v, other):
        torch.manual_seed(1)
        first.append(attention_kernels.LAYOUTS[layout](q, k, values, bounds, 0.3, None)[:5])
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=0)
