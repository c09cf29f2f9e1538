"""A teacher's logits of every training text, computed once and cached beside the tokenized data.

A teacher in eval mode is deterministic, so where its logits are all a distillation reads, later
epochs and later runs with the same data, teacher and precision read them here instead of
running it: they cost only the student. The key is the tokenized data's own (source, tokenizer,
options, unlabelled texts), the sha256 of the teacher's weights and config, and the precision."""

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from datamodules.cache import keyed_path
from datamodules.loaders import make_loader

log = logging.getLogger(__name__)

COLUMN = "teacher_logits"


WEIGHT_FILES = ("*.safetensors", "*.bin", "config.json")  # what a teacher's logits follow from


def teacher_digest(teacher_dir: str) -> str:
    """sha256 of the teacher's weights and config, read in full: other weights of the same size,
    their times restored, are another teacher."""
    digest = hashlib.sha256()
    folder = Path(teacher_dir)
    for path in sorted({p for pattern in WEIGHT_FILES for p in folder.glob(pattern)}):
        with open(path, "rb") as f:
            digest.update(path.name.encode() + hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def logits_path(cache_dir: str, data_key: str, teacher_dir: str, precision: str) -> Path:
    return keyed_path(cache_dir, f"{data_key}-teacher-logits",
                      {"teacher": teacher_digest(teacher_dir), "precision": precision}).with_suffix(".npy")


def save_atomically(logits: np.ndarray, path: Path) -> None:
    """Written to a temporary file and renamed, so concurrent runs never read half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npy")
    with os.fdopen(handle, "wb") as file:
        np.save(file, logits)
    os.replace(tmp, path)


def attach(dm, teacher_dir: str, precision: str, compute: Callable[[DataLoader], np.ndarray]) -> None:
    """The data module `dm`'s training split with a column of the teacher's logits, read from the
    cache or first computed by `compute` on the rows in order, by the process of rank 0 while the
    others wait."""
    train, hp, trainer = dm.splits["train"], dm.hparams, dm.trainer
    if COLUMN in train.column_names:
        return
    path = logits_path(hp.cache_dir, dm.cache_path.name, teacher_dir, precision)
    writer = trainer is None or trainer.is_global_zero
    if writer and not path.is_file():
        started = time.perf_counter()
        # once, in order, on this process alone (a DDP sampler would shard the rows)
        loader = make_loader(dm.model_rows("train"), dm.eval_batch_size, False, dm.collator, hp.num_workers,
                             hp.seed)
        save_atomically(compute(loader), path)
        log.info("teacher logits of %s training texts computed in %.1f s, cached in %s",
                 f"{len(train):,}", time.perf_counter() - started, path)
    elif writer:
        log.info("teacher logits of %s training texts read from the cache: %s", f"{len(train):,}", path)
    if trainer is not None:
        trainer.strategy.barrier()
    logits = np.load(path)
    if len(logits) != len(train):
        raise RuntimeError(f"{path} holds {len(logits)} rows of teacher logits for {len(train)} texts")
    dm.splits["train"] = train.add_column(COLUMN, list(logits))
