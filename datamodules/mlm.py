"""MaskedLMDataModule: any text -> tokenized once -> concatenated into fixed-size blocks -> masked.

Training masks are drawn afresh for every batch by `DataCollatorForLanguageModeling`. Validation
masks are drawn once, seeded, and cached with the blocks, so validation perplexity compares
across epochs and runs.
"""

import logging
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, concatenate_datasets
from lightning import LightningDataModule
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling, default_data_collator

from datamodules import sources
from datamodules.cache import keyed_path, load_cached, save_atomically, tokenizer_identity
from datamodules.loading import make_loader
from lightning_modules.backbone import load_tokenizer
from lightning_modules.errors import UserError, at_least, check

log = logging.getLogger(__name__)


def flat_values(column: pa.ChunkedArray) -> np.ndarray:
    while pa.types.is_list(column.type):
        column = pc.list_flatten(column)
    return column.to_numpy()


def group_into_blocks(tokenized: Dataset, block_size: int) -> Dataset:
    """Concatenate all tokenized texts and cut them into full blocks; only the final remainder
    (fewer than `block_size` tokens) is dropped. Columnar numpy work: seconds for 20M tokens."""
    ids = flat_values(tokenized.data.column("input_ids"))
    count = len(ids) // block_size
    blocks = {}
    for name in tokenized.column_names:
        values = flat_values(tokenized.data.column(name))
        per_token = len(values) // len(ids)  # 2 for offset_mapping's (start, end) pairs
        shape = (count, block_size, per_token) if per_token > 1 else (count, block_size)
        blocks[name] = values[:count * block_size * per_token].reshape(shape)
    return Dataset.from_dict(blocks)


class MaskedLMDataModule(LightningDataModule):
    """Text for masked-language modelling; labels in the source are ignored.

    Args:
        tokenizer: backbone whose tokenizer is used (the CLI links it to `model.backbone`).
        dataset: Hugging Face hub id, used when `data_dir` is not set.
        data_dir: local folder of split files (`train`, `test`, `unsup`, ...: JSONL, CSV, Parquet,
            `.txt` with one text per line; see `datamodules.sources`).
        text_fields: columns joined with a space to make each text.
        train_splits: splits whose texts are trained on (IMDB: `train` and `unsup`).
        val_split: split used for validation; when the source lacks it, `val_fraction` of the
            training texts is held out instead.
        val_fraction: share of training texts held out when there is no `val_split`.
        block_size: tokens per training block; texts are concatenated, then cut.
        mlm_probability: share of tokens masked (80% [MASK], 10% random, 10% unchanged).
        whole_word_mask: mask all pieces of a word together.
        limit_train_blocks, limit_val_blocks: random subsets of blocks (the published recipe
            uses 10,000 and 1,000).
        batch_size: training batch size (per device); validation uses twice this.
        num_workers: DataLoader worker processes.
        seed: seeds the split, the subsets, the shuffling and the validation masks.
        cache_dir: where tokenized blocks are kept between runs.
        trust_remote_code: run the tokenizer code a hub repository ships (linked from the model).
    """

    def __init__(
        self,
        tokenizer: str,
        dataset: str | None = "stanfordnlp/imdb",
        data_dir: str | None = None,
        text_fields: list[str] = ["text"],
        train_splits: list[str] = ["train", "unsup"],
        val_split: str = "test",
        val_fraction: float = 0.05,
        block_size: int = 128,
        mlm_probability: float = 0.15,
        whole_word_mask: bool = False,
        limit_train_blocks: int | None = None,
        limit_val_blocks: int | None = None,
        batch_size: int = 64,
        num_workers: int = 2,
        seed: int = 42,
        cache_dir: str = ".cache/tokenized",
        trust_remote_code: bool = False,
    ):
        super().__init__()
        check("--data.mlm_probability", mlm_probability, 0.0 < mlm_probability < 1.0,
              "a probability in (0, 1)")
        check("--data.val_fraction", val_fraction, 0.0 < val_fraction < 1.0, "a fraction in (0, 1)")
        at_least("--data.block_size", block_size, 8)
        at_least("--data.batch_size", batch_size, 1)
        at_least("--data.limit_train_blocks", limit_train_blocks, 1, optional=True)
        at_least("--data.limit_val_blocks", limit_val_blocks, 1, optional=True)
        at_least("--data.num_workers", num_workers, 0)
        if data_dir is not None and not Path(data_dir).expanduser().is_dir():
            raise UserError(f"data_dir '{data_dir}' does not exist or is not a folder")
        self.save_hyperparameters()
        self.tokenizer = load_tokenizer(tokenizer, trust_remote_code)
        if block_size > self.tokenizer.model_max_length:
            raise UserError(f"block_size={block_size} exceeds the {self.tokenizer.model_max_length}-token "
                            f"limit of backbone '{tokenizer}'")
        self.collator = self.masking_collator(seed=None)
        self.splits: DatasetDict | None = None

    def masking_collator(self, seed: int | None) -> DataCollatorForLanguageModeling:
        return DataCollatorForLanguageModeling(
            self.tokenizer, mlm_probability=self.hparams.mlm_probability,
            whole_word_mask=self.hparams.whole_word_mask, seed=seed,
        )

    @cached_property
    def cache_path(self) -> Path:
        """Computed once, so prepare_data and setup agree even if the data folder changes."""
        hp = self.hparams
        return keyed_path(hp.cache_dir, type(self).__name__, {
            "source": sources.identity(hp.dataset, hp.data_dir),
            "tokenizer": tokenizer_identity(self.tokenizer),
            "options": {k: hp[k] for k in (
                "text_fields", "train_splits", "val_split", "val_fraction", "block_size",
                "mlm_probability", "whole_word_mask", "limit_train_blocks", "limit_val_blocks", "seed")},
        })

    def prepare_data(self) -> None:
        path = self.cache_path
        if path.is_dir():
            log.info("tokenized blocks found in cache: %s", path)
            return
        train_texts, val_texts = self.texts(sources.load_source(self.hparams.dataset, self.hparams.data_dir))
        hp = self.hparams
        train = self.subset(self.to_blocks(train_texts, "training"), hp.limit_train_blocks)
        val = self.subset(self.to_blocks(val_texts, "validation"), hp.limit_val_blocks)
        save_atomically(DatasetDict({"train": train, "validation": self.mask_once(val)}), path)
        log.info("%d training and %d validation blocks of %d tokens cached in %s",
                 len(train), len(val), hp.block_size, path)

    def texts(self, raw: DatasetDict) -> tuple[Dataset, Dataset]:
        """The training and validation texts, as one `text` column each."""
        hp = self.hparams
        missing = [s for s in hp.train_splits if s not in raw]
        if missing:
            raise UserError(f"the source has no split '{missing[0]}'; splits are {sorted(raw)} "
                            "(set --data.train_splits)")
        for name in {*hp.train_splits, hp.val_split} & set(raw):
            sources.require_columns(raw[name], hp.text_fields, f"{name} data", "set --data.text_fields")

        def joined(ds: Dataset) -> Dataset:
            return Dataset.from_dict({"text": sources.joined_texts(ds, hp.text_fields)})

        train = concatenate_datasets([joined(raw[s]) for s in hp.train_splits])
        if hp.val_split in raw:
            return train, joined(raw[hp.val_split])
        held_out = train.train_test_split(test_size=hp.val_fraction, seed=hp.seed)
        return held_out["train"], held_out["test"]

    def to_blocks(self, texts: Dataset, role: str) -> Dataset:
        hp = self.hparams
        texts = texts.filter(lambda b: [bool(t.strip()) for t in b["text"]], batched=True)
        if len(texts) == 0:
            raise UserError(f"no non-empty {role} texts for the masked language model")

        def encode(batch):
            # verbose=False: texts longer than the model limit are fine, they are cut into blocks
            enc = self.tokenizer(batch["text"], return_special_tokens_mask=True, verbose=False,
                                 return_offsets_mapping=hp.whole_word_mask,
                                 return_attention_mask=False, return_token_type_ids=False)
            return dict(enc)

        tokenized = texts.map(encode, batched=True, remove_columns=["text"], desc="tokenizing")
        blocks = group_into_blocks(tokenized, hp.block_size)
        if len(blocks) == 0:
            tokens = len(flat_values(tokenized.data.column("input_ids")))
            raise UserError(f"the {role} texts hold {tokens} tokens, fewer than one block of "
                            f"--data.block_size={hp.block_size}: add text or lower the block size")
        return blocks

    def subset(self, blocks: Dataset, limit: int | None) -> Dataset:
        if limit is None or limit >= len(blocks):
            return blocks
        return blocks.shuffle(seed=self.hparams.seed).select(range(limit))

    def mask_once(self, blocks: Dataset) -> Dataset:
        """Masked input_ids and labels drawn once with a seeded generator."""
        collator = self.masking_collator(seed=self.hparams.seed)

        def mask(batch):
            rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
            masked = collator(rows)
            return {"input_ids": masked["input_ids"].tolist(), "labels": masked["labels"].tolist()}

        return blocks.map(mask, batched=True, batch_size=256, remove_columns=blocks.column_names,
                          desc="masking validation blocks")

    def setup(self, stage: str) -> None:
        if self.splits is None:
            self.splits = load_cached(self.cache_path)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return make_loader(self.splits["train"], hp.batch_size, True, self.collator, hp.num_workers,
                           hp.seed, self.trainer)

    def val_dataloader(self) -> DataLoader:
        hp = self.hparams
        return make_loader(self.splits["validation"], 2 * hp.batch_size, False,
                           default_data_collator, hp.num_workers, hp.seed)
