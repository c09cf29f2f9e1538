"""Where text comes from: a local folder or a hub id -> `DatasetDict` of {text, label}; how errors
name a split; what identifies a source in a cache key.

A local folder holds the original aclImdb layout, the original AG News CSV or split files
(`train.jsonl`, `test.csv.gz`, `unsup.txt`, ...), as `datamodules.readers` describes and reads them.
"""

from pathlib import Path

import datasets
from datasets import DatasetDict

from core.errors import UserError
from core.pretrained import hub_reachable
from datamodules.readers import SPLIT_NAMES, is_aclimdb, read_aclimdb, read_split_files, split_files


def data_folder(data_dir: str) -> Path:
    """The local data folder, or one line saying it is missing."""
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise UserError(f"data_dir '{data_dir}' does not exist or is not a folder")
    return path


def load_local(data_dir: str) -> DatasetDict:
    path = data_folder(data_dir)
    if is_aclimdb(path):
        return read_aclimdb(path)
    files = split_files(path)
    if "train" not in files:
        raise UserError(
            f"no training data in '{data_dir}': expected train.jsonl / train.csv / train.parquet "
            "(optionally .gz) or the aclImdb layout train/pos, train/neg"
        )
    return read_split_files(files)


LOCAL_COPY = "to read a local copy instead, pass --data.data_dir <folder> (its layouts: docs/data.md)"


def load_hub(dataset: str) -> DatasetDict:
    """A dataset from the Hugging Face hub, or its cached copy when HF_HUB_OFFLINE=1; where neither
    loads, the one line says how to point the run at a local copy."""
    if not datasets.config.HF_HUB_OFFLINE and not hub_reachable():
        raise UserError(f"cannot load dataset '{dataset}': the Hugging Face hub is unreachable; set "
                        f"HF_HUB_OFFLINE=1 to use a cached copy, or {LOCAL_COPY}")
    try:
        splits = datasets.load_dataset(dataset)
        return DatasetDict({SPLIT_NAMES.get(name, name): ds for name, ds in splits.items()})
    except (ConnectionError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as err:
        reason = str(err).splitlines()[0]
        raise UserError(f"cannot load dataset '{dataset}': {reason}; {LOCAL_COPY}") from None


def load_source(dataset: str | None, data_dir: str | None) -> DatasetDict:
    """Local files win over the hub id, so one config serves online and offline users."""
    if data_dir:
        return load_local(data_dir)
    if dataset:
        return load_hub(dataset)
    raise UserError("no data source: set --data.data_dir (local files) or --data.dataset (hub id)")


def origin(data_dir: str | None, split: str) -> str:
    """How errors name a split: its file where it is a local split file."""
    if data_dir:
        path = Path(data_dir).expanduser()
        files = split_files(path) if path.is_dir() and not is_aclimdb(path) else {}
        if split in files:
            return str(files[split])
    return f"{split} data"


def identity(dataset: str | None, data_dir: str | None) -> dict:
    """What identifies a source in a cache key: its files' names, sizes and times, or the hub id."""
    return {"files": fingerprint(data_dir)} if data_dir else {"dataset": dataset}


def fingerprint(data_dir: str) -> list:
    """Name, size and mtime of every file under a data folder: the cache key of local sources."""
    root = Path(data_dir).expanduser().resolve()
    return [str(root)] + [
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*")) if p.is_file()
    ]
