"""What the intermediate losses read inside a model during its ordinary forward pass: the output
of the embeddings and of chosen encoder layers, and the queries, keys and values of their
attention, recorded by forward hooks. The packed attention kernels never materialise attention scores, so
the losses compute them from these, for the mapped layers only, one text at a time."""

import itertools
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from core.batches import num_texts
from core.errors import UserError
from lightning_modules.adapters import body, encoder_layers

EMBEDDINGS = -1  # the key of the embeddings' output among the layers' outputs
PROJECTIONS = {"query": ("key", "value"), "q_lin": ("k_lin", "v_lin")}  # BERT, MiniLM, TinyBERT; DistilBERT


@dataclass
class Recorded:
    """Outputs by layer index ([rows, tokens, width] each): hidden states, queries, keys, values."""

    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    queries: dict[int, torch.Tensor] = field(default_factory=dict)
    keys: dict[int, torch.Tensor] = field(default_factory=dict)
    values: dict[int, torch.Tensor] = field(default_factory=dict)


def projections(layer: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
    """A layer's query, key and value projections (their LoRA-wrapped forms where LoRA adapts them)."""
    modules = dict(layer.named_modules())
    for query, (key, value) in PROJECTIONS.items():
        for name in modules:
            if name.rsplit(".", 1)[-1] == query:
                stem = name.removesuffix(query)
                return modules[name], modules[stem + key], modules[stem + value]
    raise UserError(f"the attention losses find no query/key/value projections ({', '.join(PROJECTIONS)}) in "
                    f"a {type(layer).__name__}; set --model.distill.attention_weight and minilm_weight to 0")


def keep(into: dict, index: int):
    def hook(module, args, output):
        into[index] = output[0] if isinstance(output, tuple) else output
    return hook


@contextmanager
def recording(model: nn.Module, hidden: list[int], attention: list[int], values: list[int]):
    """While active, `model`'s forward passes fill the `Recorded` it yields: the embeddings' and
    the `hidden` layers' outputs (none without `hidden`), the queries and keys of the `attention`
    layers, the values of the `values` layers."""
    seen, handles = Recorded(), []
    stack = encoder_layers(model)
    if hidden:
        handles.append(body(model).embeddings.register_forward_hook(keep(seen.hidden, EMBEDDINGS)))
        handles += [stack[i].register_forward_hook(keep(seen.hidden, i)) for i in hidden]
    for i in attention:
        query, key, _ = projections(stack[i])
        handles += [query.register_forward_hook(keep(seen.queries, i)),
                    key.register_forward_hook(keep(seen.keys, i))]
    handles += [projections(stack[i])[2].register_forward_hook(keep(seen.values, i)) for i in values]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def text_spans(batch: dict) -> list[tuple[int, int, int]]:
    """(row, start, end) of each text: a packed row holds its texts one after another (the closing
    [PAD] segment is none of them), a padded batch one text a row, padded on the right."""
    if "cu_seq_lens_q" in batch:
        bounds = batch["cu_seq_lens_q"][:num_texts(batch) + 1].tolist()
        return [(0, start, end) for start, end in zip(bounds[:-1], bounds[1:])]
    return [(row, 0, length) for row, length in enumerate(batch["attention_mask"].sum(1).tolist())]


def real_tokens(states: torch.Tensor, spans: list[tuple[int, int, int]]) -> torch.Tensor:
    """[real tokens, width]: the states of the texts' own tokens, no padding."""
    return torch.cat(per_text(states, spans))


def per_text(states: torch.Tensor, spans: list[tuple[int, int, int]]) -> list[torch.Tensor]:
    """Each text's states, [tokens, width], taken with one `unbind` and one `split` a row (the
    texts of a row follow one another from its start, as `text_spans` gives them): a slice per
    text made its backward write a zero tensor of the whole batch per text, as per-text
    attention's did (`attention_kernels.per_text_sdpa`)."""
    rows, texts = states.unbind(0), []
    for row, group in itertools.groupby(spans, key=lambda span: span[0]):
        sizes = [end - start for _, start, end in group]
        texts += rows[row].split([*sizes, rows[row].shape[0] - sum(sizes)])[:-1]
    return texts
