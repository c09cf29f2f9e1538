"""Texts without labels for a distillation's teacher to label (`--data.unlabelled`): the source's
`unsup` split (IMDB's 50,000 reviews), the training rows that `limit_train_samples` leaves out
(`unused`, their labels dropped), or a file. They join the training split with the label
`core.batches.UNLABELLED`, and the student learns the teacher's label and logits for them: the
standard way to give a student more to learn from when labels are few."""

import os
from pathlib import Path

from datasets import Dataset, DatasetDict

from core.batches import UNLABELLED
from core.errors import UserError, at_least
from datamodules import cells, sources
from datamodules.readers import FORMATS

KEYWORDS = ("unsup", "unused")


def check_unlabelled(unlabelled: str | None, limit: int | None, limit_train_samples: int | None) -> None:
    """Where the texts come from, checked before anything loads."""
    at_least("--data.limit_unlabelled_samples", limit, 1, optional=True)
    if unlabelled is None or unlabelled == "unsup":
        return
    if unlabelled == "unused":
        if limit_train_samples is None:
            raise UserError("--data.unlabelled unused takes the training rows that "
                            "--data.limit_train_samples leaves out, but it is not set")
        return
    file = Path(unlabelled).expanduser()
    ext = os.path.splitext(file.name.removesuffix(".gz"))[1]
    if not file.is_file() or ext not in FORMATS:
        raise UserError(f"--data.unlabelled '{unlabelled}' is neither {' nor '.join(KEYWORDS)} nor a "
                        f"text file ({', '.join(sorted(FORMATS))}, optionally .gz)")


def unlabelled_identity(unlabelled: str | None) -> dict:
    """What identifies an unlabelled file in the cache key (nothing for the keywords: the source
    and the options identify those)."""
    if unlabelled is None or unlabelled in KEYWORDS:
        return {}
    file = Path(unlabelled).expanduser().resolve()
    return {"unlabelled": [str(file), file.stat().st_size, file.stat().st_mtime_ns]}


def unlabelled_texts(unlabelled: str, raw: DatasetDict, unused: Dataset | None, text_fields: list[str],
                     data_dir: str | None, limit: int | None, seed: int) -> Dataset:
    """{text, label} rows, every label `UNLABELLED`; at most `limit`, drawn with `seed`."""
    if unlabelled == "unused":
        if unused is None or not len(unused):
            raise UserError("--data.unlabelled unused: --data.limit_train_samples leaves no training row out")
        texts = cells.column(unused, "text")
    elif unlabelled == "unsup":
        if "unsup" not in raw:
            raise UserError(f"--data.unlabelled unsup: the source has no unsup split (its splits: "
                            f"{', '.join(raw)}); name a file of texts instead")
        where = sources.origin(data_dir, "unsup")
        texts = cells.joined_texts(raw["unsup"], text_fields, where, required=True)
    else:
        texts = cells.read_texts(unlabelled, text_fields, "--data.unlabelled")
    if not texts:  # an empty split would be cached whole, and then fail to load on every run
        raise UserError(f"--data.unlabelled '{unlabelled}' holds no text (blank lines only): give texts "
                        "for the teacher to label, or leave --data.unlabelled out")
    rows = Dataset.from_dict({"text": texts, "label": [UNLABELLED] * len(texts)})
    return rows.shuffle(seed=seed).select(range(limit)) if limit is not None and limit < len(rows) else rows


def check_labeller(model) -> None:
    """Only a teacher can label the texts: a run without one is refused before any tokenizing."""
    if model is not None and not model.hparams.get("teacher"):
        raise UserError("--data.unlabelled adds texts without labels, which only a teacher can label: "
                        "add --config configs/overlays/distill.yaml --model.teacher <classifier folder>")
