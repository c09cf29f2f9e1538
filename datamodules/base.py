"""What every data module shares: options checked on entry, the tokenizer, raw text from a local
folder or the hub, tokenization once in `prepare_data` under a cache key, and resumable loaders."""

import logging
from functools import cached_property
from pathlib import Path

from datasets import Dataset, DatasetDict
from lightning import LightningDataModule
from torch.utils.data import DataLoader

from core.errors import UserError, at_least, check
from core.pretrained import load_tokenizer
from datamodules import sources
from datamodules.cache import keyed_path, load_cached, save_atomically, tokenizer_identity
from datamodules.loaders import make_loader

log = logging.getLogger(__name__)


def eval_batch_size(options) -> int:
    """Texts per batch where nothing trains: `eval_batch_size`, else twice the training batch;
    `options` the data module's hparams or its section of a run's config."""
    return options.get("eval_batch_size") or 2 * options["batch_size"]


class TextDataModule(LightningDataModule):
    """Base of the classification and MLM data modules. A subclass names the options that change
    what is cached (`cache_options`), turns raw splits into tokenized ones (`build`), and sets
    `self.collator` for training batches. The arguments are documented in the subclasses, which
    list them all, so `--help` shows each."""

    def __init__(
        self,
        tokenizer: str,
        dataset: str | None,
        data_dir: str | None,
        text_fields: list[str],
        val_fraction: float,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        seed: int,
        cache_dir: str,
        trust_remote_code: bool,
    ):
        super().__init__()
        check("--data.val_fraction", val_fraction, 0.0 < val_fraction < 1.0, "a fraction in (0, 1)")
        at_least("--data.batch_size", batch_size, 1)
        at_least("--data.eval_batch_size", eval_batch_size, 1, optional=True)
        at_least("--data.num_workers", num_workers, 0)
        if data_dir is not None:
            sources.data_folder(data_dir)  # before the tokenizer loads: a typo fails at once
        self.save_hyperparameters()
        self.tokenizer = load_tokenizer(tokenizer, trust_remote_code)
        self.collator = None
        self.splits: DatasetDict | None = None

    def check_token_limit(self, option: str, tokens: int) -> None:
        limit = self.tokenizer.model_max_length
        if tokens > limit:
            raise UserError(f"{option.removeprefix('--data.')}={tokens} exceeds the {limit}-token "
                            f"limit of backbone '{self.hparams.tokenizer}'")

    # ---- where the raw text comes from; subclasses may override both ----
    def source_identity(self) -> dict:
        """What identifies the raw data in the cache key."""
        return sources.identity(self.hparams.dataset, self.hparams.data_dir)

    def load_raw(self) -> DatasetDict:
        return sources.load_source(self.hparams.dataset, self.hparams.data_dir)

    # ---- preparation, run once (rank 0), result cached ----
    def cache_options(self) -> list[str]:
        """The options that change the tokenized splits, hence the cache key."""
        raise NotImplementedError

    def build(self, raw: DatasetDict) -> DatasetDict:
        """Raw splits -> the tokenized splits that are cached."""
        raise NotImplementedError

    @cached_property
    def cache_path(self) -> Path:
        """Computed once, so prepare_data and setup agree even if the data folder changes."""
        hp = self.hparams
        return keyed_path(hp.cache_dir, type(self).__name__, {
            "source": self.source_identity(),
            "tokenizer": tokenizer_identity(self.tokenizer),
            "options": {k: hp[k] for k in self.cache_options()},
        })

    def prepare_data(self) -> None:
        path = self.cache_path
        if path.is_dir():
            log.info("tokenized data found in cache: %s", path)
            return
        splits = self.build(self.load_raw())
        save_atomically(splits, path)
        log.info("tokenized %s cached in %s",
                 ", ".join(f"{name}: {len(ds):,}" for name, ds in splits.items()), path)

    def setup(self, stage: str) -> None:
        if self.splits is None:
            self.splits = load_cached(self.cache_path)

    # ---- loading and batching ----
    @property
    def eval_batch_size(self) -> int:
        return eval_batch_size(self.hparams)

    def model_rows(self, split: str) -> Dataset:
        """A split as the model reads it: its `text` column is kept in the cache for predictions.csv only."""
        dataset = self.splits[split]
        return dataset.remove_columns("text") if "text" in dataset.column_names else dataset

    def loader(self, split: str, shuffle: bool, collator=None) -> DataLoader:
        hp = self.hparams
        batch_size = hp.batch_size if split == "train" else self.eval_batch_size
        return make_loader(self.model_rows(split), batch_size, shuffle, collator or self.collator,
                           hp.num_workers, hp.seed, self.trainer)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("validation", shuffle=False)
