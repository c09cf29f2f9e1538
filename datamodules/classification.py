"""TextClassificationDataModule: raw text -> stratified splits -> tokenized once, cached -> batches."""

import logging
import math
from collections import Counter
from functools import cached_property
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict
from lightning import LightningDataModule
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from datamodules import sources
from datamodules.cache import keyed_path, load_cached, save_atomically, tokenizer_identity
from datamodules.loading import make_loader
from datamodules.packing import PackedCollator
from lightning_modules.backbone import load_tokenizer
from lightning_modules.errors import UserError, at_least, check

log = logging.getLogger(__name__)


class TextClassificationDataModule(LightningDataModule):
    """Any {text, label} source. Subclasses (IMDB, AG News) only change defaults.

    Args:
        tokenizer: backbone name, alias or local folder whose tokenizer is used (the CLI links
            it to `model.backbone`).
        label_names: class names in label-id order; labels in the data are ids or these names.
        dataset: Hugging Face hub id, used when `data_dir` is not set.
        data_dir: local folder (see `datamodules.sources`); wins over `dataset`.
        text_fields: columns joined with a space to make the input text.
        label_field: column holding the label.
        max_length: tokens kept per text (longer texts are truncated).
        batch_size: training batch size (per device).
        eval_batch_size: validation/test/predict batch size; defaults to twice `batch_size`.
        val_fraction: share of train held out, stratified, when the source has no validation split.
        limit_train_samples, limit_val_samples, limit_test_samples: random subsets for quick runs.
        num_workers: DataLoader worker processes.
        seed: seeds the validation split, the subsets and the shuffling.
        cache_dir: where tokenized datasets are kept between runs.
        predict_file: texts for `predict` (`.txt`, one per line, or a JSONL / CSV / Parquet file
            with `text_fields`); without it, `predict` runs on the test split.
        trust_remote_code: run the tokenizer code a hub repository ships (linked from the model).
        packing: concatenate each batch's texts into one row, so no padding is computed
            (`datamodules.packing`); the same batches and the same loss as padded ones. False pads
            each batch to its longest text instead.
        packed_length_multiple: round a packed row up to a multiple of this many tokens, so
            compiled kernels see few shapes.
    """

    def __init__(
        self,
        tokenizer: str,
        label_names: list[str],
        dataset: str | None = None,
        data_dir: str | None = None,
        text_fields: list[str] = ["text"],
        label_field: str = "label",
        max_length: int = 512,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        limit_train_samples: int | None = None,
        limit_val_samples: int | None = None,
        limit_test_samples: int | None = None,
        num_workers: int = 2,
        seed: int = 42,
        cache_dir: str = ".cache/tokenized",
        trust_remote_code: bool = False,
        predict_file: str | None = None,
        packing: bool = True,
        packed_length_multiple: int = 256,
    ):
        super().__init__()
        check("--data.val_fraction", val_fraction, 0.0 < val_fraction < 1.0, "a fraction in (0, 1)")
        check("--data.label_names", label_names, len(set(label_names)) == len(label_names) >= 2,
              "two or more distinct class names")
        at_least("--data.max_length", max_length, 3)  # [CLS], one token, [SEP]
        at_least("--data.batch_size", batch_size, 1)
        at_least("--data.eval_batch_size", eval_batch_size, 1, optional=True)
        for name, limit in (("train", limit_train_samples), ("val", limit_val_samples),
                            ("test", limit_test_samples)):
            at_least(f"--data.limit_{name}_samples", limit, 1, optional=True)
        at_least("--data.num_workers", num_workers, 0)
        at_least("--data.packed_length_multiple", packed_length_multiple, 1)
        if data_dir is not None and not Path(data_dir).expanduser().is_dir():
            raise UserError(f"data_dir '{data_dir}' does not exist or is not a folder")
        self.save_hyperparameters()
        self.label_names = list(label_names)
        self.tokenizer = load_tokenizer(tokenizer, trust_remote_code)
        if max_length > self.tokenizer.model_max_length:
            raise UserError(f"max_length={max_length} exceeds the {self.tokenizer.model_max_length}-token "
                            f"limit of backbone '{tokenizer}'")
        self.collator = (PackedCollator(self.tokenizer.pad_token_id, max_length, packed_length_multiple)
                         if packing else DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=8))
        self.splits: DatasetDict | None = None
        self.predict_texts: list[str] = []

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    # ---- where the raw text comes from; subclasses may override both ----
    def source_identity(self) -> dict:
        """What identifies the raw data in the cache key."""
        return sources.identity(self.hparams.dataset, self.hparams.data_dir)

    def load_raw(self) -> DatasetDict:
        return sources.load_source(self.hparams.dataset, self.hparams.data_dir)

    # ---- preparation, run once (rank 0), result cached ----
    @cached_property
    def cache_path(self) -> Path:
        """Computed once, so prepare_data and setup agree even if the data folder changes."""
        hp = self.hparams
        return keyed_path(hp.cache_dir, type(self).__name__, {
            "source": self.source_identity(),
            "tokenizer": tokenizer_identity(self.tokenizer),
            "options": {k: hp[k] for k in (
                "label_names", "text_fields", "label_field", "max_length", "val_fraction",
                "limit_train_samples", "limit_val_samples", "limit_test_samples", "seed")},
        })

    def prepare_data(self) -> None:
        if self.hparams.predict_file and self.trainer is not None and self.trainer.predicting:
            return  # predicting on a file needs none of the training data
        path = self.cache_path
        if path.is_dir():
            log.info("tokenized data found in cache: %s", path)
            return
        splits = self.make_splits(self.load_raw())
        tokenized = DatasetDict({name: self.tokenize(ds) for name, ds in splits.items()})
        save_atomically(tokenized, path)
        log.info("tokenized data cached in %s", path)

    def make_splits(self, raw: DatasetDict) -> DatasetDict:
        hp = self.hparams
        splits = {name: self.to_text_label(ds, name) for name, ds in raw.items()
                  if name in ("train", "validation", "test")}  # not `unsup`: it has no labels
        self.check_class_counts(splits["train"], holding_out="validation" not in splits)
        if "validation" not in splits:
            held_out = splits["train"].train_test_split(
                test_size=hp.val_fraction, stratify_by_column="label", seed=hp.seed
            )
            splits["train"], splits["validation"] = held_out["train"], held_out["test"]
        if "test" not in splits:
            log.warning("the source has no test split; test and predict use the validation split")
            splits["test"] = splits["validation"]
        limits = {"train": hp.limit_train_samples, "validation": hp.limit_val_samples,
                  "test": hp.limit_test_samples}
        for name, limit in limits.items():
            if limit is not None and limit < len(splits[name]):
                splits[name] = splits[name].shuffle(seed=hp.seed).select(range(limit))
        return DatasetDict(splits)

    def check_class_counts(self, train: Dataset, holding_out: bool) -> None:
        """Every class needs training texts, and a stratified held-out split two of each."""
        names, fraction = self.label_names, self.hparams.val_fraction
        counts = Counter(train["label"])
        per_class = ", ".join(f"{name}: {counts[i]}" for i, name in enumerate(names))
        fewest = min(counts[i] for i in range(len(names)))
        if not holding_out:
            if fewest < 1:
                raise UserError(f"the training data lacks a class ({per_class}): every class needs "
                                "at least one training text")
            return
        held_out = math.ceil(fraction * len(train))
        if fewest < 2 or not (
                len(names) <= held_out <= len(train) - len(names)):
            raise UserError(
                f"the training data is too small to hold out a stratified validation split of "
                f"{fraction:g} ({len(train)} texts; {per_class}): it needs at least 2 texts of each "
                f"class and {len(names)} texts on each side; add texts, change --data.val_fraction "
                "or add a validation file")

    def to_text_label(self, ds: Dataset, split: str) -> Dataset:
        """Check columns and labels, join text fields, drop empty texts, label -> ClassLabel."""
        hp = self.hparams
        sources.require_columns(ds, [*hp.text_fields, hp.label_field], f"{split} data",
                                "set --data.text_fields / --data.label_field")
        where = sources.origin(hp.data_dir, split)
        labels = [self.label_id(value, where, row) for row, value in enumerate(ds[hp.label_field], 1)]
        texts = sources.joined_texts(ds, hp.text_fields)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if len(keep) < len(texts):
            log.warning("%s: skipped %d empty texts", split, len(texts) - len(keep))
        if not keep:
            raise UserError(f"{split} data has no non-empty texts")
        out = Dataset.from_dict({"text": [texts[i] for i in keep], "label": [labels[i] for i in keep]})
        return out.cast_column("label", ClassLabel(names=self.label_names))

    def label_id(self, value, where: str, row: int) -> int:
        """A label given as a class id or name -> its id; a missing one is reported as missing."""
        names = self.label_names
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise UserError(f"{where} row {row}: missing {self.hparams.label_field!r}")
        if isinstance(value, float) and value.is_integer():  # a CSV column with a gap reads as floats
            value = int(value)
        if isinstance(value, str) and value in names:
            return names.index(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return value
        raise UserError(f"{where} row {row}: label {value!r} is outside the known classes: "
                        f"ids 0-{len(names) - 1} or names {names}")

    def tokenize(self, ds: Dataset) -> Dataset:
        def encode(batch):
            enc = self.tokenizer(batch["text"], truncation=True, max_length=self.hparams.max_length,
                                 return_attention_mask=False, return_token_type_ids=False)
            return {"input_ids": enc["input_ids"], "labels": batch["label"]}

        # the text stays, for predictions.csv; the loaders drop it
        return ds.map(encode, batched=True, batch_size=1000, remove_columns=["label"], desc="tokenizing")

    # ---- loading and batching ----
    def setup(self, stage: str) -> None:
        if stage == "predict" and self.hparams.predict_file:
            texts = sources.read_texts(self.hparams.predict_file, self.hparams.text_fields)
            texts = Dataset.from_dict({"text": texts, "label": [0] * len(texts)})
            self.splits = DatasetDict({"predict": self.tokenize(texts)})
            return
        if self.splits is None:
            self.splits = load_cached(self.cache_path)

    def loader(self, split: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        batch_size = hp.batch_size if split == "train" else (hp.eval_batch_size or 2 * hp.batch_size)
        dataset = self.splits[split].remove_columns("text")
        return make_loader(dataset, batch_size, shuffle, self.collator, hp.num_workers, hp.seed, self.trainer)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        split = "predict" if "predict" in self.splits else "test"
        self.predict_texts = self.splits[split]["text"]
        return self.loader(split, shuffle=False)
