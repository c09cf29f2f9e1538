"""Every place text can come from, real files included, and the errors for bad sources."""

import gzip
import json

import pandas as pd
import pytest

from core.errors import UserError
from datamodules import cells, readers, sources

ROWS = [{"text": f"review number {i}", "label": i % 2} for i in range(10)]


def write_jsonl(path, rows, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


@pytest.mark.parametrize("name", ["train.jsonl", "train.jsonl.gz", "train.csv", "train.csv.gz",
                                  "train.parquet"])
def test_split_file_formats(tmp_path, name):
    path = tmp_path / name
    if ".jsonl" in name:
        write_jsonl(path, ROWS, gz=name.endswith(".gz"))
    elif ".csv" in name:
        pd.DataFrame(ROWS).to_csv(path, index=False)
    else:
        pd.DataFrame(ROWS).to_parquet(path)
    ds = sources.load_local(str(tmp_path))
    assert list(ds) == ["train"]
    assert ds["train"]["text"] == [r["text"] for r in ROWS]
    as_written = str if ".csv" in name else int  # a CSV cell is read as its text (test_text_cells.py)
    assert ds["train"]["label"] == [as_written(r["label"]) for r in ROWS]


def test_split_names_are_recognised(tmp_path):
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl"):
        write_jsonl(tmp_path / name, ROWS)
    assert sorted(sources.load_local(str(tmp_path))) == ["test", "train", "validation"]


@pytest.mark.slow
def test_real_imdb_jsonl(shared_data):
    ds = sources.load_local(str(shared_data / "imdb"))
    assert {k: len(v) for k, v in ds.items()} == {"train": 25000, "test": 25000, "unsup": 50000}
    assert sorted(set(ds["train"]["label"])) == [0, 1]
    assert set(ds["unsup"]["label"]) == {-1}


@pytest.mark.slow
def test_real_aclimdb_layout(shared_data):
    ds = sources.load_local(str(shared_data / "imdb" / "aclImdb_sample"))
    assert {k: len(v) for k, v in ds.items()} == {"train": 400, "test": 400}
    train = ds["train"]
    assert train["label"].count(0) == 200 and train["label"].count(1) == 200
    first_neg = (shared_data / "imdb/aclImdb_sample/train/neg").glob("0_*.txt")
    assert train["text"][0] == next(first_neg).read_text(encoding="utf-8")


@pytest.mark.slow
def test_real_ag_news_original_csv(shared_data):
    ds = sources.load_local(str(shared_data / "ag_news"))
    assert {k: len(v) for k, v in ds.items()} == {"train": 10429, "test": 7600}
    test = ds["test"]
    assert [test["label"].count(c) for c in range(4)] == [1900] * 4
    assert test["text"][0].startswith("Fears for T N pension after talks")


def test_folder_without_train_file(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", ROWS)
    with pytest.raises(UserError, match="no training data"):
        sources.load_local(str(tmp_path))


def test_no_source_at_all():
    with pytest.raises(UserError, match="no data source"):
        sources.load_source(None, None)


def test_a_number_where_text_belongs_is_its_text(tmp_path):
    """JSON numbers beside strings; CSV digits are text as written (tests/test_text_cells.py)."""
    write_jsonl(tmp_path / "train.jsonl", [{"text": "good"}, {"text": 0}, {"text": 2.5}])
    (tmp_path / "test.csv").write_text("code,note\n7,12\n0,\n")
    ds = sources.load_local(str(tmp_path))
    assert cells.joined_texts(ds["train"], ["text"], "train") == ["good", "0", "2.5"]
    assert [ds["test"].features[c].dtype for c in ("code", "note")] == ["large_string"] * 2
    assert cells.joined_texts(ds["test"], ["code", "note"], "test") == ["7 12", "0"]


def test_a_null_title_beside_a_description_is_predicted_on_the_description(tmp_path):
    rows = [{"title": None, "description": "stocks rise"}, {"title": "Oil", "description": None},
            {"title": "Rain", "description": "in Spain"}]
    write_jsonl(tmp_path / "news.jsonl", rows)
    texts = cells.read_texts(str(tmp_path / "news.jsonl"), ["title", "description"])
    assert texts == ["stocks rise", "Oil", "Rain in Spain"]


def test_a_number_after_the_first_10_mb_of_json_leaves_every_text_as_written(tmp_path):
    """The reader types a JSON column by its first 10 MB, unless the file is read in one chunk."""
    write_jsonl(tmp_path / "train.jsonl", [{"text": "x" * (1 << 20)}] * 11 + [{"text": "last"}, {"text": 5}])
    texts = cells.joined_texts(readers.read_dataset(tmp_path / "train.jsonl"), ["text"], "train")
    assert texts[-2:] == ["last", "5"]


@pytest.mark.parametrize("reachable", [False, True])
def test_a_dataset_the_hub_cannot_give_says_how_to_read_a_local_copy(reachable, monkeypatch):
    """Offline, or with the hub's own error (a proxy lets the probe through): either way the one
    line names --data.data_dir, which the documented hub commands need here."""
    def unreachable(name):
        raise ConnectionError("Couldn't reach 'stanfordnlp/imdb' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(sources.datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(sources, "hub_reachable", lambda: reachable)
    monkeypatch.setattr(sources.datasets, "load_dataset", unreachable)
    with pytest.raises(UserError) as err:
        sources.load_source("stanfordnlp/imdb", None)
    message = str(err.value)
    assert message.startswith("cannot load dataset 'stanfordnlp/imdb': ")
    assert "pass --data.data_dir <folder> (its layouts: docs/data.md)" in message
    assert ("Couldn't reach" in message) == reachable
