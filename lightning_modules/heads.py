"""A model's own head on chosen positions only. A forward hook narrows the hidden states the
model's body returns, so the head (pooler, classifier, MLM transform and vocabulary projection)
runs unchanged from the model's own code: weights, LoRA, freezing and exports stay as they are,
for any architecture."""

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

from core.batches import model_inputs, num_texts
from core.errors import UserError
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


def classifier_outputs(model: nn.Module, batch: dict, with_loss: bool, takes_packed: bool, name: str):
    """A classifier's output on a padded or a packed batch (`datamodules.packing`); `name` says
    which model it is in an error ("backbone '...'", "teacher '...'")."""
    inputs = model_inputs(batch, with_labels=with_loss)
    if "cu_seq_lens_q" not in batch:
        return model(**inputs)
    if not takes_packed:
        raise UserError(f"{name} does not route attention through transformers' attention interface, "
                        "so it cannot take packed batches; set --data.packing false")
    with first_token_outputs(model, batch["cu_seq_lens_q"], num_texts(batch)):
        return model(**inputs)


def masked_positions_only(model: nn.Module, masked: torch.Tensor):
    """The hidden states of the `masked` positions ([batch, tokens] bool) as one sequence,
    [1, masked count, width]: the MLM head then projects ~15% of the positions onto the
    vocabulary instead of all of them (about a third of DistilBERT's MLM compute)."""
    return hidden_states_at(body(model), lambda hidden: hidden[masked].unsqueeze(0))
