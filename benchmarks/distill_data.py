"""The texts the distillation benchmark trains and scores on, drawn once from real IMDB: labelled
training reviews (and a few for the validation split no run reads), test reviews, and reviews of the
unlabelled `unsup` split, written as split files so that every run reads the very same rows and a
run's seed changes only their order."""

import gzip
import json
import random
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def draw(source: Path, out: Path, train: int, test: int, unlabelled: int, seed: int = 0) -> dict:
    """`out`/data holding train, validation and test split files and `out`/unlabelled.jsonl; the
    rows drawn at random with `seed` from `source` (`../shared/data/imdb`)."""
    rng = random.Random(seed)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    labelled = rng.sample(read_jsonl(source / "train.jsonl.gz"), train + 64)
    write_jsonl(data / "train.jsonl", labelled[:train])
    write_jsonl(data / "validation.jsonl", labelled[train:])
    tests = rng.sample(read_jsonl(source / "test.jsonl.gz"), test)
    write_jsonl(data / "test.jsonl", tests)
    texts = rng.sample(read_jsonl(source / "unsup.jsonl.gz"), unlabelled)
    write_jsonl(out / "unlabelled.jsonl", [{"text": row["text"]} for row in texts])
    return {"data_dir": str(data), "unlabelled": str(out / "unlabelled.jsonl"),
            "test_labels": [row["label"] for row in tests]}
