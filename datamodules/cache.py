"""Tokenized datasets cached on disk under a key of everything that changes their content."""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from datasets import DatasetDict, load_from_disk

# Bump when the tokenization or splitting code changes what ends up in the cache.
CACHE_VERSION = 3


def keyed_path(cache_dir: str, name: str, parts: dict) -> Path:
    """`<cache_dir>/<name>-<hash of parts and the code version>`."""
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return Path(cache_dir) / f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def tokenizer_identity(tokenizer) -> dict:
    """The tokenizer's full definition, less the truncation/padding state that calls change."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return {"class": type(tokenizer).__name__, "spec": spec}


def load_cached(path: Path) -> DatasetDict:
    """The cached splits, memory-mapped; `prepare_data` must have written them."""
    if not path.is_dir():
        raise RuntimeError(f"no tokenized data at {path}; prepare_data did not run")
    return load_from_disk(str(path))


def save_atomically(splits: DatasetDict, path: Path) -> None:
    """Write to a temporary folder and rename it, so a kill or a concurrent run never leaves half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        splits.save_to_disk(tmp)
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.is_dir():
            raise
