"""The once-per-shape check of a varlen kernel (`attention_kernels.kernel_for`), on what training
asks of it: forward and backward, on a packed row that ends in the empty closing segment of every
unrounded row (`datamodules.packing`) and holds a text longer than one kernel block (128 tokens),
against torch's SDPA in fp32, text by text. A kernel that computes the output right and a gradient
wrong is caught here, before the first training step, and the run takes the exact path.
"""

from itertools import accumulate
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from lightning_modules.attention_kernels import Kernel

# texts of the check batch: unequal, one over two kernel blocks of 128 tokens and not a multiple of
# one, one of a single token, then the empty closing segment (a repeated last offset)
CHECK_LENGTHS = (5, 300, 1, 0)
CHECK_MAX_LENGTH = 512  # the length bound passed with the boundaries: above the longest text, as in training
# the largest gap from SDPA in fp32 a kernel may show on a text, relative to that text's largest value
# (1% of the tensor's where that is larger, as for a single token's gradient of q, exactly 0): about 4x
# the worst a kernel that rounds probabilities, gradients and output to 16 bits shows on this batch
# (flash-attn's order of operations emulated on the CPU, heads of 8 to 256: fp16 1.1e-3, bf16 9.7e-3);
# fp32 for the tests' stand-in kernels: 4x the 7e-5 of SDPA with a block-diagonal mask at head size 256
TOLERANCES = {torch.float16: 5e-3, torch.bfloat16: 4e-2, torch.float32: 3e-4}
COMPARED = ("output", "backward's gradient of q", "backward's gradient of k", "backward's gradient of v")


def first_line(err: Exception) -> str:
    message = str(err).strip().splitlines()
    return f"{type(err).__name__}: {message[0] if message else ''}"


def sdpa_per_text(q, k, v, grad, bounds: list[int]) -> list[torch.Tensor]:
    """SDPA's output and its gradients of q, k, v in fp32, one call per text, [1, H, T, D] each, on
    the CPU: a GPU may compute fp32 in TF32 (`torch.set_float32_matmul_precision`)."""
    q, k, v, grad = (t.detach().float().cpu() for t in (q, k, v, grad))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = torch.cat([F.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e])
                     for s, e in zip(bounds[:-1], bounds[1:]) if e > s], dim=2)
    return [out.detach(), *torch.autograd.grad(out, (q, k, v), grad)]


def worst_gap(got: torch.Tensor, want: torch.Tensor, bounds: list[int]) -> tuple[float, int]:
    """The largest gap of `got` from `want` on a text, relative to the text's scale, and that
    text's length."""
    floor = want.abs().max() / 100
    gaps = [((got[:, :, s:e] - want[:, :, s:e]).abs().max() / want[:, :, s:e].abs().max().maximum(floor),
             e - s) for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
    gap, length = max(gaps, key=lambda pair: pair[0].nan_to_num(float("inf")))
    return gap.item(), length


@torch.compiler.disable
def self_check(kernel: "Kernel", device: torch.device, dtype: torch.dtype, heads: int,
               head_dim: int) -> str | None:
    """None when `kernel`'s output and gradients match SDPA's in fp32 on the check batch, on this
    device and dtype; otherwise what went wrong. Gradients are on even where the first packed
    batch runs without them (validation, predict)."""
    generator = torch.Generator().manual_seed(0)
    bounds = list(accumulate(CHECK_LENGTHS, initial=0))
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        q, k, v, grad = (torch.randn(1, heads, bounds[-1], head_dim, generator=generator).to(device, dtype)
                         for _ in range(4))
        exact = sdpa_per_text(q, k, v, grad, bounds)
        leaves = [t.requires_grad_() for t in (q, k, v)]
        cu_seq_lens = torch.tensor(bounds, dtype=torch.int32, device=device)
        views = (t[0].transpose(0, 1) for t in leaves)  # [tokens, heads, head dim], as in training
        try:
            out = kernel.run(*views, cu_seq_lens, CHECK_MAX_LENGTH, 0.0, None)
        except Exception as err:  # a kernel that cannot run here fails in its own ways
            return f"it raised {first_line(err)}"
        if out.shape != (bounds[-1], heads, head_dim):
            return f"it returned shape {tuple(out.shape)} for {(bounds[-1], heads, head_dim)}"
        out = out.transpose(0, 1)[None]
        try:
            grads = torch.autograd.grad(out, leaves, grad)
        except Exception as err:
            return f"its backward raised {first_line(err)}"
    tolerance = TOLERANCES[dtype]
    for name, got, want in zip(COMPARED, (out, *grads), exact, strict=True):
        gap, length = worst_gap(got.detach().float().cpu(), want, bounds)
        if not gap <= tolerance:
            return (f"its {name} is {gap:.3g} from SDPA's in fp32 on a text of {length} token"
                    f"{'s' * (length > 1)} (relative; tolerance {tolerance})")
    return None
