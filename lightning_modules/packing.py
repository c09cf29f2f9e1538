"""Attention over packed batches (`datamodules.packing`) that stays inside each text, through
transformers' `AttentionInterface`: no copy of any model's code. The heads read each text's first
token through `lightning_modules.heads`."""

import logging
import math
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

log = logging.getLogger(__name__)

ATTENTION = "varlen"


@cache
def flash_attn_varlen():
    """flash-attn's varlen kernel (it has attention dropout) if installed, else None."""
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        return None
    return flash_attn_varlen_func


@cache
def torch_varlen():
    """torch's own flash varlen kernel (torch >= 2.10; no attention dropout) if present, else None."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


@cache
def warn_no_attention_dropout(p: float) -> None:
    log.warning("packed batches on CUDA without flash-attn: torch's varlen kernel has no attention "
                "dropout, so the attention-probability dropout (p=%s) is skipped; hidden dropout "
                "stays. Install flash-attn to keep it, or use --data.packing false", p)


@torch.compiler.disable  # data-dependent slicing: under --model.compile it runs eagerly between graphs
def per_text_sdpa(query, key, value, cu_seq_lens: torch.Tensor, dropout: float, scaling):
    """SDPA on each text in turn: [1, H, T, D] in, [T, H, D] out. Exact, any device and dtype."""
    bounds = cu_seq_lens.tolist()
    outputs = [
        F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e],
                                       dropout_p=dropout, scale=scaling)
        for s, e in zip(bounds[:-1], bounds[1:]) if e > s
    ]
    return torch.cat(outputs, dim=2)[0].transpose(0, 1)


def varlen_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     cu_seq_lens_q: torch.Tensor | None = None, max_length_q: int | None = None, **kwargs):
    """Attention within each packed text; padded batches (no `cu_seq_lens_q`) go to SDPA as usual.

    query, key, value: [1, heads, tokens, head dim]; returns [1, tokens, heads, head dim]. On CUDA
    in 16-bit: flash-attn's varlen kernel if installed, else torch's (no attention dropout);
    otherwise SDPA per text (a block-diagonal mask over the whole row would score every text
    against every other, ~batch-size times the work).
    """
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    fast = query.is_cuda and query.dtype in (torch.float16, torch.bfloat16)
    if fast and flash_attn_varlen() is not None:
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
        out = flash_attn_varlen()(q, k, v, cu_seq_lens_q, cu_seq_lens_q, max_length_q, max_length_q,
                                  dropout_p=dropout, softmax_scale=scaling)
    elif fast and torch_varlen() is not None:
        if dropout > 0:
            warn_no_attention_dropout(dropout)
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
        default_scale = scaling is None or math.isclose(scaling, query.shape[-1] ** -0.5)
        out = torch_varlen()(q, k, v, cu_seq_lens_q, cu_seq_lens_q, max_length_q, max_length_q,
                             **({} if default_scale else {"scale": scaling}))
    else:
        out = per_text_sdpa(query, key, value, cu_seq_lens_q, dropout, scaling)
    return out.unsqueeze(0), None


AttentionInterface.register(ATTENTION, varlen_attention)
# padded batches still get SDPA's padding mask; packed ones pass none
AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def use_varlen_attention(model: PreTrainedModel) -> bool:
    """Let `model` take packed batches as well as padded ones; False where its code does not go
    through transformers' attention interface (some remote-code models)."""
    try:
        model.set_attn_implementation(ATTENTION)
    except (ValueError, NotImplementedError) as err:
        log.info("%s keeps its attention (%s): padded batches only", type(model).__name__, err)
        return False
    return True
