"""Attention over packed batches (`datamodules.packing`) that stays inside each text, through
transformers' `AttentionInterface`: no copy of any model's code. The heads read each text's first
token through `lightning_modules.heads`."""

import logging
import math
from functools import cache

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from lightning_modules.attention_kernels import exact_attention, kernel_name, kernel_named

log = logging.getLogger(__name__)

ATTENTION = "varlen"


@cache
def warn_no_attention_dropout(name: str, p: float) -> None:
    log.warning("packed batches: %s has no attention dropout, so the attention-probability dropout "
                "(p=%s) is skipped; hidden dropout stays. Install flash-attn to keep it, or use "
                "--data.packing false", name, p)


def varlen_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     cu_seq_lens_q: torch.Tensor | None = None, max_length_q: int | None = None, **kwargs):
    """Attention within each packed text; padded batches (no `cu_seq_lens_q`) go to SDPA as usual.

    query, key, value: [1, heads, tokens, head dim]; returns [1, tokens, heads, head dim]. A varlen
    kernel where this device, dtype and head size allow one and it passed its check
    (`lightning_modules.attention_kernels`); otherwise SDPA per text (a block-diagonal mask over the
    whole row would score every text against every other, ~batch-size times the work).
    """
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    name = kernel_name(query.device, query.dtype, query.shape[1], query.shape[-1])
    if name is None:
        return exact_attention(query, key, value, cu_seq_lens_q, dropout, scaling).unsqueeze(0), None
    kernel = kernel_named(name)
    if dropout > 0 and not kernel.has_dropout:
        warn_no_attention_dropout(kernel.name, dropout)
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
    default_scale = scaling is None or math.isclose(scaling, query.shape[-1] ** -0.5)
    out = kernel.run(q, k, v, cu_seq_lens_q, max_length_q, dropout if kernel.has_dropout else 0.0,
                     None if default_scale else scaling)
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
