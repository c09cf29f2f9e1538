"""What the deployment tests share: a tiny classifier export, input files of texts of many
lengths, the PyTorch reference each prediction is compared with, an output read back."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.helpers import one_thread
from tests.tiny_models import tiny_tokenizer

LABELS = ["neg", "pos"]
WORDS = ("the movie was good but the plot was dull and the cast was not weak really simply a great "
         "film").split()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Each test on one thread (its module imports this fixture): tiny models gain nothing from a
    second, and where the 2 cores are shared, two threads made these tests 25 times slower."""
    with one_thread():
        yield


def tiny_classifier(base: str, folder: Path) -> Path:
    """An export folder (hf_model/ as HFExport writes it) of a tiny random BERT classifier whose head
    is scaled up and centred on `texts()`, so that its labels differ from text to text."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    tokenizer = tiny_tokenizer()
    with torch.no_grad():
        model.classifier.weight.mul_(40)
        logits = model.eval()(**tokenizer(texts(), padding=True, return_tensors="pt")).logits
        model.classifier.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def texts(n: int = 40, seed: int = 0) -> list[str]:
    """`n` texts of 1 to 60 words in shuffled order, some of them twice."""
    rng = np.random.default_rng(seed)
    found = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 60)))) for _ in range(n - n // 5)]
    found += [found[int(i)] for i in rng.integers(0, len(found), size=n // 5)]
    return [found[int(i)] for i in rng.permutation(n)]


def write_jsonl(path: Path, items: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in items))
    return path


def reference_probs(folder: Path, items: list[str], max_length: int = 128) -> np.ndarray:
    """Each text's probabilities by the PyTorch model alone, one text at a time (no batching)."""
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        return np.stack([model(**tokenizer(text, truncation=True, max_length=max_length,
                                           return_tensors="pt")).logits[0].softmax(-1).numpy()
                         for text in items])


def probabilities(rows: list[dict]) -> np.ndarray:
    """Each output row's probabilities, in the order of `LABELS`."""
    return np.array([[float(row[f"prob_{name}"]) for name in LABELS] for row in rows])


def read_rows(path: Path) -> list[dict]:
    """The output's rows, as the csv (or json) module reads them."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def other_threads_around() -> None:
    """Two threads for torch and in OMP_NUM_THREADS, so that a load that ignored `threads` is seen; the
    conftest puts torch's threads back and `one_torch_thread` the variable (after the test: monkeypatch
    would restore the value one_torch_thread set, after one_torch_thread restored the original)."""
    torch.set_num_threads(2)
    os.environ["OMP_NUM_THREADS"] = "2"
