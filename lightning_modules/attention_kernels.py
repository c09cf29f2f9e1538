"""Which kernel computes attention over a packed row on this device, and the proof that it works.

The varlen kernels (flash-attn's, else torch's own FlashAttention-2) need a CUDA GPU of compute
capability 8.0 or newer (Ampere), 16-bit inputs and a head size that is a multiple of 8 up to
256: TinyBERT's 26, a T4, a V100 or a GTX 1650 get the exact path instead, SDPA on each text in
turn. The kernel chosen checks itself once per device, dtype and shape, forward and backward,
against SDPA in fp32 (`kernel_check`); on an exception or a mismatch the run takes the exact path,
with one warning that names the reason.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from lightning_modules.kernel_check import self_check

log = logging.getLogger(__name__)

HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Kernel:
    """A varlen kernel: `run(q, k, v, cu_seq_lens, max_length, dropout, scale)` on [tokens,
    heads, head dim] tensors, each text attending only to itself."""

    name: str
    run: Callable
    has_dropout: bool


def flash_attn_run(q, k, v, cu_seq_lens, max_length, dropout, scale):
    from flash_attn import flash_attn_varlen_func
    return flash_attn_varlen_func(q, k, v, cu_seq_lens, cu_seq_lens, max_length, max_length,
                                  dropout_p=dropout, softmax_scale=scale)


def torch_varlen_run(q, k, v, cu_seq_lens, max_length, dropout, scale):
    from torch.nn.attention.varlen import varlen_attn
    return varlen_attn(q, k, v, cu_seq_lens, cu_seq_lens, max_length, max_length, scale=scale)


@cache
def installed_kernels() -> tuple[Kernel, ...]:
    """The varlen kernels this environment has, best first: flash-attn keeps attention dropout."""
    kernels = []
    try:
        import flash_attn  # noqa: F401
        kernels.append(Kernel("flash-attn varlen", flash_attn_run, has_dropout=True))
    except ImportError:
        pass
    try:
        from torch.nn.attention import varlen  # noqa: F401
        kernels.append(Kernel("torch varlen_attn", torch_varlen_run, has_dropout=False))
    except ImportError:
        pass
    return tuple(kernels)


def choose(device_type: str, capability: tuple[int, int] | None, dtype: torch.dtype, head_dim: int,
           kernels: tuple[Kernel, ...]) -> tuple[Kernel | None, str]:
    """The first of `kernels` that this device, dtype and head size allow, or None (the exact
    path) with the reason."""
    if device_type != "cuda":
        return None, f"the varlen kernels run on CUDA only, not {device_type}"
    if dtype not in HALF:
        return None, f"the varlen kernels take 16-bit inputs, not {dtype}"
    if capability is None or capability < (8, 0):
        shown = ".".join(map(str, capability)) if capability else "unknown"
        return None, f"the varlen kernels need compute capability 8.0 (Ampere) or newer, not {shown}"
    if head_dim % 8 or head_dim > 256:
        return None, ("the varlen kernels need a head size that is a multiple of 8 up to 256, this "
                      f"model's is {head_dim}")
    if not kernels:
        return None, "neither flash-attn nor torch's varlen kernel (torch >= 2.10) is installed"
    return kernels[0], "supported"


DROPOUT_BITS = 16  # the CPU's attention-dropout rate is a multiple of 2^-16 (0.1 -> 0.1000061)


def cpu_dropout(query: torch.Tensor, dropout: float) -> bool:
    """Whether this attention takes `sdpa`'s own dropout path (and `layout`'s rule for it)."""
    return bool(dropout) and query.device.type == "cpu"


def dropped_of(dropout: float) -> int:
    """How many of the 2^16 values of a draw drop a probability: the rate `keep_mask` applies."""
    return round(dropout * 2**DROPOUT_BITS)


def keep_mask(shape: tuple[int, ...], dropout: float) -> torch.Tensor:
    """Which attention probabilities dropout keeps, each dropped with probability `dropout` rounded
    to a multiple of 2^-16: 16-bit draws of numpy's PCG64, seeded from torch's generator (so
    `seed_everything` governs them), about 4.5x faster on the CPU than torch's `bernoulli_`."""
    seed = int(torch.randint(2**62, (), dtype=torch.int64))
    generator = np.random.Generator(np.random.PCG64(seed))
    bits = generator.integers(0, 2**DROPOUT_BITS, size=shape, dtype=np.uint16)
    return torch.from_numpy(bits >= dropped_of(dropout))


def sdpa(query, key, value, attn_mask, dropout: float, scaling):
    """F.scaled_dot_product_attention, except under attention dropout on the CPU: there SDPA leaves
    its fused kernel for a math path whose `bernoulli_` costs more than the attention itself, so the
    same math runs here with `keep_mask`'s dropout (about 1.6x faster forward and backward at 128 to
    512 tokens)."""
    if not cpu_dropout(query, dropout):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout,
                                              scale=scaling)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = (query * scale) @ key.transpose(-1, -2)
    if attn_mask is not None:
        scores.masked_fill_(~attn_mask, float("-inf"))
    probs = torch.where(keep_mask(scores.shape, dropout), scores.softmax(-1), 0.0)
    return probs @ (value / (1 - dropped_of(dropout) / 2**DROPOUT_BITS))


def per_text_sdpa(query, key, value, bounds: list[int], dropout: float, scaling):
    """Exact attention, one SDPA call per text: [1, H, T, D] in, [T, H, D] out. The texts are
    taken with one `split`, whose backward joins their gradients in one `cat`: a slice per text
    made its backward write a zero tensor of the whole row per text and add them all up (on 16 AG
    News articles, MiniLM, CPU: about 300 `fill_` and 250 `add_` of the whole row a step)."""
    sizes = [e - s for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
    outputs = [sdpa(q, k, v, None, dropout, scaling)
               for q, k, v in zip(*(t.split(sizes, dim=2) for t in (query, key, value)))]
    return torch.cat(outputs, dim=2)[0].transpose(0, 1)


def padded_view_sdpa(query, key, value, bounds: list[int], dropout: float, scaling):
    """Exact attention, one SDPA call for the batch: the texts gathered from the packed row into
    [texts, H, longest, D] with a key padding mask, and the real positions scattered back."""
    starts, ends = torch.tensor([(s, e) for s, e in zip(bounds[:-1], bounds[1:]) if e > s],
                                device=query.device).T
    lengths = ends - starts
    offsets = torch.arange(int(lengths.max()), device=query.device)
    real = offsets < lengths[:, None]  # [texts, longest]: row-major order is the packed order
    index = (starts[:, None] + offsets).clamp(max=query.shape[2] - 1)
    q, k, v = (t[0][:, index].transpose(0, 1) for t in (query, key, value))  # [texts, H, longest, D]
    out = sdpa(q, k, v, real[:, None, None, :], dropout, scaling)
    return out.transpose(1, 2)[real]


# attention work a padded view may add before one call per text is cheaper (measured on the CPU,
# benchmarks/attention_layouts.py)
PADDED_VIEW_MAX_WORK = 1.5
# under attention dropout on the CPU: the longest text up to which one padded call is cheaper
# (the per-call overhead of many short texts outweighs their padding)
DROPOUT_PADDED_VIEW_MAX_LENGTH = 64


def layout(lengths: list[int], cpu_dropout: bool = False) -> str:
    """The exact attention layout for texts of these lengths, a pure function of shapes: one
    padded call ("padded view") unless padding to the longest text would cost more attention work
    than `PADDED_VIEW_MAX_WORK` times the texts' own, then one call per text ("per text"). Under
    attention dropout on the CPU (training), per text unless every text is short: there `sdpa`'s
    math path gains nothing from one large call, and per text measured faster even on texts of
    equal lengths of 128 tokens."""
    lengths = [n for n in lengths if n]
    if cpu_dropout:
        return "padded view" if max(lengths) <= DROPOUT_PADDED_VIEW_MAX_LENGTH else "per text"
    padded_work = len(lengths) * max(lengths) ** 2
    return "padded view" if padded_work <= PADDED_VIEW_MAX_WORK * sum(n * n for n in lengths) else "per text"


LAYOUTS = {"padded view": padded_view_sdpa, "per text": per_text_sdpa}


@torch.compiler.disable  # data-dependent shapes: under --model.compile it runs eagerly between graphs
def exact_attention(query, key, value, cu_seq_lens: torch.Tensor, dropout: float, scaling,
                    chosen: str | None = None):
    """Exact attention within each packed text on any device, dtype and head size, [1, H, T, D] in,
    [T, H, D] out, in the layout `layout` picks for the batch (or `chosen`)."""
    bounds = cu_seq_lens.tolist()
    name = chosen or layout([e - s for s, e in zip(bounds[:-1], bounds[1:])],
                            cpu_dropout=cpu_dropout(query, dropout))
    return LAYOUTS[name](query, key, value, bounds, dropout, scaling)


@cache
def kernel_for(device: torch.device, dtype: torch.dtype, heads: int, head_dim: int) -> Kernel | None:
    """The varlen kernel packed attention uses here, checked once; None means the exact path."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    kernel, reason = choose(device.type, capability, dtype, head_dim, installed_kernels())
    if kernel is None:
        if device.type == "cuda":
            log.warning("packed attention on %s in %s: %s; using exact per-text attention (slower)",
                        device, dtype, reason)
        return None
    problem = self_check(kernel, device, dtype, heads, head_dim)
    if problem:
        log.warning("packed attention: %s failed its check on %s in %s (%s); using exact per-text "
                    "attention (slower)", kernel.name, device, dtype, problem)
        return None
    log.info("packed attention on %s in %s: %s (checked forward and backward against SDPA)", device,
             dtype, kernel.name)
    return kernel


@torch.compiler.assume_constant_result
def kernel_name(device: torch.device, dtype: torch.dtype, heads: int, head_dim: int) -> str | None:
    """`kernel_for`'s choice by name: a constant to torch.compile, so a compiled layer neither breaks
    its graph here nor traces the check."""
    kernel = kernel_for(device, dtype, heads, head_dim)
    return kernel.name if kernel else None


def kernel_named(name: str) -> Kernel:
    return next(kernel for kernel in installed_kernels() if kernel.name == name)
