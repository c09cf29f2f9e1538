"""Splitting, caching, label checks and batching of TextClassificationDataModule."""

from collections import Counter
from unittest import mock

import pytest
from datasets import ClassLabel, Dataset

from core.errors import UserError
from datamodules import sources
from datamodules.ag_news import AGNewsDataModule
from datamodules.classification import TextClassificationDataModule, stratified_split
from datamodules.imdb import IMDBDataModule
from tests.helpers import classification_dm, prepared, review_rows, write_rows


def test_validation_split_is_stratified_and_deterministic(tiny_bert, tmp_path):
    data = write_rows(tmp_path / "data", review_rows(200, ratio=0.25))
    splits = [prepared(classification_dm(tiny_bert, data, val_fraction=0.2,
                                         cache_dir=str(tmp_path / c))).splits for c in ("a", "b")]
    val = splits[0]["validation"]
    assert len(val) == 40
    assert Counter(val["labels"]) == {0: 30, 1: 10}
    assert splits[0]["validation"]["input_ids"] == splits[1]["validation"]["input_ids"]
    assert set(map(tuple, val["input_ids"])).isdisjoint(map(tuple, splits[0]["train"]["input_ids"]))


def test_the_held_out_split_holds_the_rows_datasets_own_split_holds():
    """Runs split before the labels were read in one piece keep their validation texts."""
    rows = review_rows(101, ratio=0.3)
    ds = Dataset.from_dict({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})
    ds = ds.cast_column("label", ClassLabel(names=["neg", "pos"]))
    kept, held_out = stratified_split(ds, 0.15, seed=7)
    reference = ds.train_test_split(test_size=0.15, stratify_by_column="label", seed=7)
    assert kept["text"][:] == reference["train"]["text"][:]
    assert held_out["text"][:] == reference["test"]["text"][:] and len(held_out) == 16


def test_second_run_loads_cache_without_tokenizing(tiny_bert, tmp_path):
    data = write_rows(tmp_path / "data", review_rows(200))
    first = prepared(classification_dm(tiny_bert, data))
    second = classification_dm(tiny_bert, data)
    with mock.patch.object(TextClassificationDataModule, "tokenize") as tokenize, \
            mock.patch.object(TextClassificationDataModule, "load_raw") as load_raw:
        prepared(second)
    tokenize.assert_not_called()
    load_raw.assert_not_called()
    assert second.cache_path == first.cache_path
    assert second.splits["train"]["input_ids"] == first.splits["train"]["input_ids"]


def test_cache_key_changes_with_options_and_files(tiny_bert, tmp_path):
    data = write_rows(tmp_path / "data", review_rows(200))
    base = classification_dm(tiny_bert, data).cache_path
    for option in ({"max_length": 16}, {"val_fraction": 0.3}, {"seed": 1}, {"label_names": ["pos", "neg"]},
                   {"limit_train_samples": 10}, {"limit_val_samples": 10}, {"limit_test_samples": 10},
                   {"text_fields": ["label"]}, {"label_field": "text"}):
        assert classification_dm(tiny_bert, data, **option).cache_path != base, option
    assert classification_dm(tiny_bert, data, batch_size=4, num_workers=1).cache_path == base
    write_rows(tmp_path / "data", review_rows(100))
    assert classification_dm(tiny_bert, data).cache_path != base


def test_dynamic_padding_pads_to_longest_in_batch(tiny_bert, tmp_path):
    rows = [{"text": "good " * (i % 7 + 1), "label": i % 2} for i in range(40)]
    data = write_rows(tmp_path / "data", rows)
    dm = prepared(classification_dm(tiny_bert, data, batch_size=8, packing=False))
    for batch in dm.train_dataloader():
        longest = int(batch["attention_mask"].sum(1).max())
        width = batch["input_ids"].shape[1]
        assert width % 8 == 0 and longest <= width < longest + 8
        assert batch["labels"].shape == batch["input_ids"].shape[:1]


def test_truncation_to_max_length(tiny_bert, tmp_path):
    rows = [{"text": "good " * 100, "label": i % 2} for i in range(20)]
    dm = prepared(classification_dm(tiny_bert, write_rows(tmp_path / "data", rows), max_length=16))
    assert max(map(len, dm.splits["train"]["input_ids"])) == 16


def test_limits_take_random_subsets(tiny_bert, tmp_path):
    data = write_rows(tmp_path / "data", review_rows(200))
    write_rows(tmp_path / "data", review_rows(200), name="test.jsonl")  # sorted: positives first
    dm = prepared(classification_dm(tiny_bert, data, limit_train_samples=50, limit_val_samples=10,
                                    limit_test_samples=20))
    assert [len(dm.splits[s]) for s in ("train", "validation", "test")] == [50, 10, 20]
    assert set(dm.splits["test"]["labels"]) == {0, 1}  # not the first 20 of the sorted file


def test_string_labels_map_to_ids(tiny_bert, tmp_path):
    rows = [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}] * 10
    dm = prepared(classification_dm(tiny_bert, write_rows(tmp_path / "data", rows), val_fraction=0.5))
    assert len(dm.splits["train"]) + len(dm.splits["validation"]) == 20
    assert Counter(dm.splits["train"]["labels"]) == {0: 5, 1: 5}
    for split in ("train", "validation"):  # pos is class 1 of ["neg", "pos"]
        pairs = zip(dm.splits[split]["text"], dm.splits[split]["labels"])
        assert all(label == (text == "good") for text, label in pairs)


@pytest.mark.slow
def test_real_imdb_subset(tiny_bert, shared_data):
    dm = prepared(IMDBDataModule(tokenizer=tiny_bert, data_dir=str(shared_data / "imdb"),
                                 max_length=64, limit_train_samples=300, limit_val_samples=100,
                                 limit_test_samples=100, num_workers=0))
    assert [len(dm.splits[s]) for s in ("train", "validation", "test")] == [300, 100, 100]
    assert 100 < Counter(dm.splits["train"]["labels"])[1] < 200  # shuffled before the subset


@pytest.mark.slow
def test_real_ag_news_csv(tiny_bert, shared_data):
    dm = prepared(AGNewsDataModule(tokenizer=tiny_bert, data_dir=str(shared_data / "ag_news"),
                                   max_length=64, limit_test_samples=200, num_workers=0))
    assert dm.num_labels == 4
    assert len(dm.splits["validation"]) == 1043  # 10% of the 10,429 rows, stratified
    assert set(dm.splits["test"]["labels"]) == {0, 1, 2, 3}


def test_null_text_fields_join_as_empty_and_a_row_without_text_is_refused(tiny_bert, tmp_path):
    rows = [{"title": None, "description": "stocks rise", "label": "pos"},
            {"title": "Oil", "description": None, "label": "neg"}]
    data_dir = write_rows(tmp_path / "data", rows)
    dm = classification_dm(tiny_bert, data_dir, text_fields=["title", "description"])
    out = dm.to_text_label(sources.load_local(data_dir)["train"], "train")
    assert out["text"] == ["stocks rise", "Oil"] and out["label"] == [1, 0]
    data_dir = write_rows(tmp_path / "more", [*rows, {"title": None, "description": "", "label": "pos"}])
    dm = classification_dm(tiny_bert, data_dir, text_fields=["title", "description"])
    with pytest.raises(UserError) as refused:  # skipped before, with a count in the log
        dm.to_text_label(sources.load_local(data_dir)["train"], "train")
    assert str(refused.value) == (f"{tmp_path / 'more' / 'train.jsonl'} row 3: missing 'title' and "
                                  "'description' (null, empty): every row needs a text")
