"""Random-weight models of the real architectures, saved as local Hugging Face folders.

Throughput does not depend on the weights, so benchmarks need no download: the configs below
are the published ones, with the bundled all-MiniLM-L6-v2's tokenizer (the uncased BERT WordPiece
vocabulary that bert-base-uncased and distilbert-base-uncased share); the embedding table is
sized from that tokenizer, not from a vocabulary size assumed here.
"""

from functools import partial
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, BertConfig, DistilBertConfig

from core.pretrained import load_tokenizer, resolve_backbone

CONFIGS = {
    "distilbert": DistilBertConfig,  # the defaults are distilbert-base-uncased
    "bert-base": BertConfig,  # the defaults are bert-base-uncased
    # stand-ins of those two shapes, for runs that check the code path rather than the speed
    "tiny": partial(BertConfig, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=512),
    "tiny-distilbert": partial(DistilBertConfig, dim=128, n_layers=2, n_heads=2, hidden_dim=512),
    # a student of another width and head count than MiniLM's 384 and 12 (distillation benchmark)
    "narrow": partial(BertConfig, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=1024),
}


def save_random_model(arch: str, path: Path, auto_class=AutoModelForSequenceClassification,
                      seed: int = 0, num_labels: int = 2) -> Path:
    """`path` holding a randomly initialised `arch` (a classifier by default) and its tokenizer."""
    torch.manual_seed(seed)
    tokenizer = load_tokenizer("minilm")
    config = CONFIGS[arch](vocab_size=len(tokenizer), num_labels=num_labels)
    auto_class.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_model(arch: str, path: Path, seed: int = 0,
               label_names: tuple[str, ...] = ("neg", "pos")) -> Path:
    """`save_random_model`, or for `minilm` the bundled pretrained MiniLM with a fresh head (seeded),
    saved once so that every loop of a benchmark starts from the very same weights; the head has
    one output per name of `label_names`."""
    if arch != "minilm":
        return save_random_model(arch, path, seed=seed, num_labels=len(label_names))
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_backbone("minilm"), num_labels=len(label_names), id2label=dict(enumerate(label_names)))
    model.save_pretrained(path)
    load_tokenizer("minilm").save_pretrained(path)
    return path


def random_token_ids(tokenizer, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Ids drawn uniformly from the tokenizer's ordinary (non-special) vocabulary."""
    ordinary = torch.tensor(sorted(set(range(len(tokenizer))) - set(tokenizer.all_special_ids)))
    return ordinary[torch.randint(len(ordinary), shape, generator=generator)]


def body_shape(model: nn.Module) -> tuple[int, int, int]:
    """(parameters outside the embeddings, layers, hidden width), for FLOP counts."""
    base = model.base_model
    embedding = sum(p.numel() for p in base.embeddings.parameters())
    total = sum(p.numel() for p in model.parameters())
    return total - embedding, model.config.num_hidden_layers, model.config.hidden_size
