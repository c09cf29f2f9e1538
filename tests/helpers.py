"""Helpers the test modules share: paths, data files written on the fly, CLI runs."""

import json
import multiprocessing
import os
import runpy
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoTokenizer

from datamodules.classification import TextClassificationDataModule
from datamodules.packing import PackedCollator
from tests.tiny_models import tiny_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CONFIGS = ROOT / "configs"
QUICKSTART = str(CONFIGS / "quickstart.yaml")
IMDB = str(CONFIGS / "imdb" / "distilbert.yaml")
MLM = str(CONFIGS / "mlm" / "tinybert-imdb.yaml")


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_rows(folder: Path, rows: list[dict], name: str = "train.jsonl") -> str:
    """`rows` as a JSON Lines split file in `folder`; returns the folder, for --data.data_dir."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(jsonl(rows))
    return str(folder)


def review_rows(n: int = 40, ratio: float = 0.5) -> list[dict]:
    """`n` short labelled reviews, the first `ratio` of them positive."""
    return [{"text": f"the movie was {'good' if i < n * ratio else 'bad'} {i}", "label": int(i < n * ratio)}
            for i in range(n)]


def classification_dm(tokenizer: str, data_dir: str, **options) -> TextClassificationDataModule:
    options = {"label_names": ["neg", "pos"], "max_length": 32, "num_workers": 0, **options}
    return TextClassificationDataModule(tokenizer=tokenizer, data_dir=data_dir, **options)


def prepared(dm):
    """The data module after what Lightning calls before fitting."""
    dm.prepare_data()
    dm.setup("fit")
    return dm


PACKING_TEXTS = ["a great movie", "the plot was dull, but the cast was not weak", "bad",
                 "the soundtrack was simply stunning and the ending was really moving", "it is a film"]


def features(texts: list[str], labels: list[int]) -> list[dict]:
    ids = tiny_tokenizer()(texts)["input_ids"]
    return [{"input_ids": i, "labels": y} for i, y in zip(ids, labels)]


def padded_and_packed(rows: list[dict] | None = None, multiple: int = 64) -> tuple[dict, dict]:
    """The same texts (by default five of `PACKING_TEXTS`) as one padded and one packed batch."""
    rows = rows or features(PACKING_TEXTS, [1, 0, 0, 1, 1])
    padded = tiny_tokenizer().pad([{"input_ids": r["input_ids"]} for r in rows], return_tensors="pt")
    padded["labels"] = torch.tensor([r["labels"] for r in rows])
    return dict(padded), PackedCollator(pad_token_id=0, max_length=128, multiple=multiple)(rows)


def batch_of(tokenizer_dir: str, texts: list[str], labels: list[int]) -> dict:
    """A padded batch with labels, as DataCollatorWithPadding makes it."""
    enc = AutoTokenizer.from_pretrained(tokenizer_dir)(texts, padding=True, return_tensors="pt")
    return {**enc, "labels": torch.tensor(labels)}


def checkpoint_weights(path) -> dict:
    """The wrapped model's weights in a Lightning checkpoint, read straight from the file."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items()}


def quick_args(backbone: str, workdir: Path, cache: Path, *extra: str, num_train: int = 64,
               num_test: int = 16) -> list[str]:
    """`fit` on the quickstart config, shrunk to seconds, logging under `workdir`."""
    return ["fit", "--config", QUICKSTART, "--model.backbone", backbone,
            "--data.num_train", str(num_train), "--data.num_test", str(num_test),
            "--data.cache_dir", str(cache), "--trainer.logger.init_args.save_dir", str(workdir / "logs"),
            *extra]


def shared_run_args(backbone: str, workdir: Path, cache: Path, epochs: int, *extra: str) -> list[str]:
    """The recipe of the session's shared runs (conftest `trained_runs`), so a test that resumes
    one of them trains it on the same terms."""
    return quick_args(backbone, workdir, cache, *extra, "--model.learning_rate", "1e-3",
                      "--data.batch_size", "16", "--trainer.max_epochs", str(epochs),
                      "--trainer.val_check_interval", "0.5", "--trainer.log_every_n_steps", "2",
                      num_train=192, num_test=48)


@contextmanager
def one_thread():
    """Torch on one CPU thread while processes are forked from this one: a forked child that
    starts a parallel region of the OpenMP pool it inherited hangs (libgomp is not fork-safe),
    and Lightning's DDP children keep an OMP_NUM_THREADS that is set."""
    threads, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if env is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = env


CLI_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def cli_command(*args: str) -> list[str]:
    """`train.py` with `args`, for a fresh interpreter (with `CLI_ENV`)."""
    return [sys.executable, str(ROOT / "train.py"), *args]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`train.py` in a fresh interpreter: only for tests of the process exit itself."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, env=CLI_ENV, timeout=timeout)


def script_main(script: str, args: list[str], stderr: Path) -> None:
    torch.set_num_threads(1)
    sys.stderr = open(stderr, "w", buffering=1)
    sys.argv = [str(ROOT / script), *args]
    runpy.run_path(str(ROOT / script), run_name="__main__")


def forked_train_py(args: list[str], stderr: Path, script: str = "train.py") -> multiprocessing.Process:
    """`python train.py <args>` (or another `script` of the repository: its `__main__` block, exit
    status, last line on stderr) in a child forked from this process, which has torch and
    Lightning imported already (a fresh interpreter spends ~10 s importing them). Its stderr goes
    to the file `stderr`; it computes on one thread, since a forked child entering its parent's
    OpenMP pool hangs."""
    process = multiprocessing.get_context("fork").Process(target=script_main, args=(script, args, stderr))
    process.start()
    return process
