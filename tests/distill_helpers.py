"""What the distillation tests share: easy labelled rows, a tiny teacher fine-tuned on them in a
second (plain torch, no Trainer), of TinyBERT's head shape so that a 64-wide student needs the
hidden-state projection, and untrained classifiers where any teacher will do."""

import shutil
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from tests.helpers import one_thread
from tests.tiny_models import save_tiny, tiny_tokenizer

LABELS = ["neg", "pos"]


def easy_rows(n: int) -> list[dict]:
    """Rows whose label one word gives away, so tiny models learn them in a few steps."""
    return [{"text": f"{'a truly great' if i % 2 else 'a rather bad'} film {'and ' * (i % 7)}{i}",
             "label": i % 2} for i in range(n)]


def classifier(tiny_model: str, folder: Path, labels: list[str], **config) -> str:
    """An untrained classifier of a tiny model's body (its `config` changed) with its tokenizer."""
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model, num_labels=len(labels), id2label=dict(enumerate(labels)), **config)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tiny_model) / name, folder / name)
    return str(folder)


def trained_teacher(folder: Path, layers: int = 2, head_size: int = 26, steps: int = 24) -> str:
    """A classifier of `layers` layers (2 heads of `head_size`) fine-tuned on `easy_rows`, saved
    with the tiny tokenizer in `folder` as an export of this project is."""
    base = save_tiny(folder.parent / f"{folder.name}-base", "bert", head_size=head_size)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label=dict(enumerate(LABELS)), num_hidden_layers=layers)
    rows = easy_rows(64)
    batch = tiny_tokenizer()([r["text"] for r in rows], padding=True, return_tensors="pt")
    labels = torch.tensor([r["label"] for r in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    with one_thread():  # ops this small wait on a second thread more than they gain from it
        for step in range(steps):
            part = slice(16 * (step % 4), 16 * (step % 4 + 1))
            loss = model(**{k: v[part] for k, v in batch.items()}, labels=labels[part]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)
