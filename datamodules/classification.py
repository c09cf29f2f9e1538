"""TextClassificationDataModule: raw text -> stratified splits -> tokenized once, cached -> batches."""

import logging
import math

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, concatenate_datasets
from datasets.arrow_dataset import stratified_shuffle_split_generate_indices
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from core.console import progress_if_long
from core.errors import at_least, check
from datamodules import cells, sources, teacher_logits
from datamodules.base import TextDataModule
from datamodules.labels import check_class_counts, label_id
from datamodules.packing import PackedCollator, rounding
from datamodules.unlabelled import check_labeller, check_unlabelled, unlabelled_identity, unlabelled_texts

log = logging.getLogger(__name__)


def stratified_split(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """The rows of `ds.train_test_split(test_size=fraction, stratify_by_column="label", seed=seed)`
    by datasets' own splitter, fed the labels in one piece (it reads them row by row: 8 s on
    IMDB's 25,000 training reviews)."""
    n_held_out = math.ceil(fraction * len(ds))
    kept, held_out = next(stratified_shuffle_split_generate_indices(
        np.asarray(cells.column(ds, "label")), len(ds) - n_held_out, n_held_out,
        rng=np.random.default_rng(seed)))
    return ds.select(kept), ds.select(held_out)


class TextClassificationDataModule(TextDataModule):
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
            compiled kernels see few shapes; by default 256 when the model compiles
            (`--model.compile true`), else no rounding, which would only add work.
        unlabelled: texts without labels that a distillation's teacher labels (needs
            `--model.teacher`; `datamodules.unlabelled`): `unsup` (the source's unsup split, e.g.
            IMDB's 50,000 reviews), `unused` (the training rows `limit_train_samples` leaves
            out) or a file of texts (`.txt`, one per line, or JSONL / CSV / Parquet with
            `text_fields`). They join the training split.
        limit_unlabelled_samples: a random subset of the unlabelled texts.
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
        packed_length_multiple: int | None = None,
        unlabelled: str | None = None,
        limit_unlabelled_samples: int | None = None,
    ):
        check("--data.label_names", label_names, len(set(label_names)) == len(label_names) >= 2,
              "two or more distinct class names")
        at_least("--data.max_length", max_length, 3)  # [CLS], one token, [SEP]
        for name, limit in (("train", limit_train_samples), ("val", limit_val_samples),
                            ("test", limit_test_samples)):
            at_least(f"--data.limit_{name}_samples", limit, 1, optional=True)
        at_least("--data.packed_length_multiple", packed_length_multiple, 1, optional=True)
        check_unlabelled(unlabelled, limit_unlabelled_samples, limit_train_samples)
        super().__init__(tokenizer=tokenizer, dataset=dataset, data_dir=data_dir, text_fields=text_fields,
                         val_fraction=val_fraction, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         num_workers=num_workers, seed=seed, cache_dir=cache_dir,
                         trust_remote_code=trust_remote_code)
        self.check_token_limit("--data.max_length", max_length)
        self.label_names = list(label_names)
        self.collator = (PackedCollator(self.tokenizer.pad_token_id, max_length, packed_length_multiple or 1)
                         if packing else DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=8))

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def cache_options(self) -> list[str]:
        return ["label_names", "text_fields", "label_field", "max_length", "val_fraction",
                "limit_train_samples", "limit_val_samples", "limit_test_samples", "seed",
                *(["unlabelled", "limit_unlabelled_samples"] if self.hparams.unlabelled else [])]

    def source_identity(self) -> dict:
        return {**super().source_identity(), **unlabelled_identity(self.hparams.unlabelled)}

    def prepare_data(self) -> None:
        if self.hparams.predict_file and self.trainer is not None and self.trainer.predicting:
            return  # predicting on a file needs none of the training data
        if self.hparams.unlabelled and self.trainer is not None:
            check_labeller(self.trainer.lightning_module)
        super().prepare_data()

    def build(self, raw: DatasetDict) -> DatasetDict:
        return DatasetDict({name: self.tokenize(ds) for name, ds in self.make_splits(raw).items()})

    def make_splits(self, raw: DatasetDict) -> DatasetDict:
        hp = self.hparams
        splits = {name: self.to_text_label(ds, name) for name, ds in raw.items()
                  if name in ("train", "validation", "test")}  # not `unsup`: it has no labels
        check_class_counts(cells.column(splits["train"], "label"), self.label_names, hp.val_fraction,
                           holding_out="validation" not in splits)
        if "validation" not in splits:
            splits["train"], splits["validation"] = stratified_split(splits["train"], hp.val_fraction,
                                                                     hp.seed)
        if "test" not in splits:
            log.warning("the source has no test split; test and predict use the validation split")
            splits["test"] = splits["validation"]
        limits = {"train": hp.limit_train_samples, "validation": hp.limit_val_samples,
                  "test": hp.limit_test_samples}
        unused = None  # the training rows a limit leaves out
        for name, limit in limits.items():
            if limit is not None and limit < len(splits[name]):
                shuffled = splits[name].shuffle(seed=hp.seed)
                splits[name] = shuffled.select(range(limit))
                unused = shuffled.select(range(limit, len(shuffled))) if name == "train" else unused
        if hp.unlabelled:
            splits["unlabelled"] = unlabelled_texts(
                hp.unlabelled, raw, unused, hp.text_fields, hp.data_dir, hp.limit_unlabelled_samples, hp.seed)
        return DatasetDict(splits)

    def to_text_label(self, ds: Dataset, split: str) -> Dataset:
        """Check columns and labels, join text fields, label -> ClassLabel; a row without a label
        or without text is refused, naming its file, row and column."""
        hp = self.hparams
        cells.require_columns(ds, [*hp.text_fields, hp.label_field], f"{split} data",
                                "set --data.text_fields / --data.label_field")
        where = sources.origin(hp.data_dir, split)
        names = self.label_names
        labels = [label_id(cells.label_cell(value, names), names, hp.label_field, where, row)
                  for row, value in enumerate(cells.column(ds, hp.label_field), 1)]
        texts = cells.joined_texts(ds, hp.text_fields, where, required=True)
        out = Dataset.from_dict({"text": texts, "label": labels})
        return out.cast_column("label", ClassLabel(names=self.label_names))

    def tokenize(self, ds: Dataset) -> Dataset:
        def encode(batch):
            enc = self.tokenizer(batch["text"], truncation=True, max_length=self.hparams.max_length,
                                 return_attention_mask=False, return_token_type_ids=False)
            return {"input_ids": enc["input_ids"], "labels": batch["label"]}

        # the text stays, for predictions.csv; the loaders drop it
        with progress_if_long(len(ds)):
            return ds.map(encode, batched=True, batch_size=1000, remove_columns=["label"], desc="tokenizing")

    def setup(self, stage: str) -> None:
        if isinstance(self.collator, PackedCollator) and self.hparams.packed_length_multiple is None:
            model = self.trainer.lightning_module if self.trainer else None
            self.collator.multiple = rounding(bool(model and model.hparams.get("compile")))
        if stage == "predict" and self.hparams.predict_file:
            texts = cells.read_texts(self.hparams.predict_file, self.hparams.text_fields)
            texts = Dataset.from_dict({"text": texts, "label": [0] * len(texts)})
            self.splits = DatasetDict({"predict": self.tokenize(texts)})
            return
        super().setup(stage)
        if "unlabelled" in self.splits:
            self.splits["train"] = concatenate_datasets([self.splits["train"], self.splits.pop("unlabelled")])

    def add_teacher_logits(self, teacher_dir: str, precision: str, compute) -> None:
        """The teacher's logits of every training text in the batches (`teacher_logits`), cached
        beside the tokenized data (`datamodules.teacher_logits`)."""
        teacher_logits.attach(self, teacher_dir, precision, compute)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)

    def predict_split(self) -> str:
        return "predict" if "predict" in self.splits else "test"

    def predict_texts(self) -> list[str]:
        """The texts `predict` runs on, in input order: row i of the predict loader is text i."""
        return cells.column(self.splits[self.predict_split()], "text")

    def predict_dataloader(self) -> DataLoader:
        return self.loader(self.predict_split(), shuffle=False)
