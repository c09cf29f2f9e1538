"""A model's own head on chosen positions only. A forward hook narrows the hidden states the
model's body returns, so the head (pooler, classifier, MLM transform and vocabulary projection)
runs unchanged from the model's own code: weights, LoRA, freezing and exports stay as they are,
for any architecture."""

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

from lightning_modules.adapters import body, encoder_stack


@contextmanager
def hidden_states_at(module: nn.Module, select: Callable[[torch.Tensor], torch.Tensor]):
    """While active, `module`'s output `last_hidden_state` is `select(last_hidden_state)`."""
    def narrow(_, args, output):
        output.last_hidden_state = select(output.last_hidden_state)
        return output

    handle = module.register_forward_hook(narrow)
    try:
        yield
    finally:
        handle.remove()


def first_token_outputs(model: nn.Module, cu_seq_lens: torch.Tensor, texts: int):
    """Each packed text's first ([CLS]) hidden state as a batch of one-token sequences,
    [texts, 1, width], taken at the encoder stack so the pooler still runs on it."""
    starts = cu_seq_lens[:texts].long()
    return hidden_states_at(encoder_stack(model), lambda hidden: hidden[0, starts].unsqueeze(1))


def masked_positions_only(model: nn.Module, masked: torch.Tensor):
    """The hidden states of the `masked` positions ([batch, tokens] bool) as one sequence,
    [1, masked count, width]: the MLM head then projects ~15% of the positions onto the
    vocabulary instead of all of them (about a third of DistilBERT's MLM compute)."""
    return hidden_states_at(body(model), lambda hidden: hidden[masked].unsqueeze(0))
