"""Which kernel packed attention uses, on every GPU our users have: the choice from capability,
dtype and head size, and the once-per-shape check that sends a kernel that raises or computes
wrongly to the exact path with one warning. On the CPU, with stand-in kernels."""

import pytest
import torch
import torch.nn.functional as F

from lightning_modules import attention_kernels
from lightning_modules.attention_kernels import Kernel, choose, kernel_for, self_check
from lightning_modules.classification import SequenceClassifier
from tests.helpers import padded_and_packed


def block_diagonal(q, k, v, cu_seq_lens, max_length, dropout, scale):
    """Exact, another way: one SDPA over the row with a mask that keeps each text to itself."""
    text = torch.repeat_interleave(torch.arange(len(cu_seq_lens) - 1), cu_seq_lens.diff().long())
    mask = text[:, None] == text[None, :]
    out = F.scaled_dot_product_attention(*(t.transpose(0, 1) for t in (q, k, v)), attn_mask=mask, scale=scale)
    return out.transpose(0, 1)


def whole_row(q, k, v, cu_seq_lens, max_length, dropout, scale):
    """Wrong: every text attends to every other."""
    return F.scaled_dot_product_attention(*(t.transpose(0, 1) for t in (q, k, v))).transpose(0, 1)


def raises(*args):
    raise RuntimeError("FlashAttention forward only supports head dimension divisible by 8\nmore")


EXACT, WRONG, RAISING = (Kernel(name, run, has_dropout=False) for name, run in (
    ("block-diagonal", block_diagonal), ("whole row", whole_row), ("raising", raises)))
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


@pytest.mark.parametrize("kernel, problem", [
    (EXACT, None),
    (WRONG, "from exact attention (tolerance 0.02)"),
    (RAISING, "it raised RuntimeError: FlashAttention forward only supports head dimension divisible by 8"),
])
def test_the_check_passes_an_exact_kernel_and_names_what_is_wrong_with_others(kernel, problem):
    found = self_check(kernel, torch.device("cpu"), FP32, heads=2, head_dim=8)
    assert found == problem if problem is None else problem in found


@pytest.fixture
def offered(monkeypatch):
    """Makes `kernel_for` offer a given stand-in kernel on the CPU, as it would on a GPU."""
    def offer(kernel: Kernel) -> None:
        monkeypatch.setattr(attention_kernels, "installed_kernels", lambda: (kernel,))
        monkeypatch.setattr(attention_kernels, "choose", lambda *args: (args[-1][0], "supported"))
        kernel_for.cache_clear()
    yield offer
    kernel_for.cache_clear()


@pytest.mark.parametrize("kernel", [WRONG, RAISING], ids=["kernel wrong", "kernel raising"])
def test_a_kernel_that_fails_its_check_leaves_packed_logits_exact_with_one_warning(kernel, offered, tiny_bert,
                                                                                  caplog):
    offered(kernel)
    module = SequenceClassifier(tiny_bert, ["neg", "pos"]).eval()
    padded, packed = padded_and_packed()
    with torch.no_grad():
        expected = module(padded)
        with caplog.at_level("WARNING"):
            logits = [module(packed) for _ in range(2)]
    for got in logits:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    warnings = [r.message for r in caplog.records if "failed its check" in r.message]
    assert len(warnings) == 1 and kernel.name in warnings[0] and "exact per-text attention" in warnings[0]


def test_a_kernel_that_passes_its_check_runs_every_packed_attention(offered, tiny_bert):
    calls = []
    spy = Kernel("spy", lambda *args: calls.append(1) or block_diagonal(*args), has_dropout=False)
    offered(spy)
    module = SequenceClassifier(tiny_bert, ["neg", "pos"]).eval()
    padded, packed = padded_and_packed()
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
