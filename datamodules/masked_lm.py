"""MaskedLMDataModule: any text -> tokenized once -> concatenated into fixed-size blocks -> masked.

Training masks are drawn afresh for every batch by `DataCollatorForLanguageModeling`. Validation
masks are drawn once, seeded, and cached with the blocks, so validation perplexity compares
across epochs and runs.
"""

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, concatenate_datasets
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling, default_data_collator

from core.console import progress_if_long
from core.errors import UserError, at_least, check
from datamodules import cells, sources
from datamodules.base import TextDataModule

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


class MaskedLMDataModule(TextDataModule):
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
        batch_size: training batch size (per device).
        eval_batch_size: validation batch size; defaults to twice `batch_size`.
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
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        seed: int = 42,
        cache_dir: str = ".cache/tokenized",
        trust_remote_code: bool = False,
    ):
        check("--data.mlm_probability", mlm_probability, 0.0 < mlm_probability < 1.0,
              "a probability in (0, 1)")
        at_least("--data.block_size", block_size, 8)
        at_least("--data.limit_train_blocks", limit_train_blocks, 1, optional=True)
        at_least("--data.limit_val_blocks", limit_val_blocks, 1, optional=True)
        super().__init__(tokenizer=tokenizer, dataset=dataset, data_dir=data_dir, text_fields=text_fields,
                         val_fraction=val_fraction, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         num_workers=num_workers, seed=seed, cache_dir=cache_dir,
                         trust_remote_code=trust_remote_code)
        self.check_token_limit("--data.block_size", block_size)
        self.collator = self.masking_collator(seed=None)

    def masking_collator(self, seed: int | None) -> DataCollatorForLanguageModeling:
        return DataCollatorForLanguageModeling(
            self.tokenizer, mlm_probability=self.hparams.mlm_probability,
            whole_word_mask=self.hparams.whole_word_mask, seed=seed,
        )

    def cache_options(self) -> list[str]:
        return ["text_fields", "train_splits", "val_split", "val_fraction", "block_size",
                "mlm_probability", "whole_word_mask", "limit_train_blocks", "limit_val_blocks", "seed"]

    def build(self, raw: DatasetDict) -> DatasetDict:
        hp = self.hparams
        train_texts, val_texts = self.texts(raw)
        train = self.subset(self.to_blocks(train_texts, "training"), hp.limit_train_blocks)
        val = self.subset(self.to_blocks(val_texts, "validation"), hp.limit_val_blocks)
        return DatasetDict({"train": train, "validation": self.mask_once(val)})

    def texts(self, raw: DatasetDict) -> tuple[Dataset, Dataset]:
        """The training and validation texts, as one `text` column each."""
        hp = self.hparams
        missing = [s for s in hp.train_splits if s not in raw]
        if missing:
            raise UserError(f"the source has no split '{missing[0]}'; splits are {sorted(raw)} "
                            "(set --data.train_splits)")
        for name in {*hp.train_splits, hp.val_split} & set(raw):
            cells.require_columns(raw[name], hp.text_fields, f"{name} data", "set --data.text_fields")

        def joined(split: str) -> Dataset:
            where = sources.origin(hp.data_dir, split)
            return Dataset.from_dict({"text": cells.joined_texts(raw[split], hp.text_fields, where)})

        train = concatenate_datasets([joined(s) for s in hp.train_splits])
        if hp.val_split in raw:
            return train, joined(hp.val_split)
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

        with progress_if_long(len(texts)):
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

        with progress_if_long(len(blocks)):
            return blocks.map(mask, batched=True, batch_size=256, remove_columns=blocks.column_names,
                              desc="masking validation blocks")

    def val_dataloader(self) -> DataLoader:
        return self.loader("validation", shuffle=False, collator=default_data_collator)
