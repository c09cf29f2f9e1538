"""Hermetic fixtures: tiny random BERT / DistilBERT model folders with a small WordPiece vocab."""

import json
import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers import SHARED_DATA  # noqa: E402
from tests.tiny_models import save_tiny  # noqa: E402


@pytest.fixture(autouse=True)
def no_tokenizer_threads_after(monkeypatch):
    """Prediction and the inference benchmark set TOKENIZERS_PARALLELISM=true (and
    RAYON_NUM_THREADS) and torch's thread count for their own runs; a child that a later test
    forks (resume, sweeps, DDP) and that tokenizes with that setting enters a thread pool that did
    not survive the fork, and hangs. Both are put back after every test."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)  # set by deploy.threads
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return str(save_tiny(tmp_path_factory.mktemp("tiny-bert"), "bert"))


@pytest.fixture(scope="module")
def export(tiny_bert, tmp_path_factory) -> Path:
    """An export folder of a tiny random classifier whose labels differ from text to text, one for
    each test module of predict.py (tests.deploy_helpers.tiny_classifier)."""
    from tests.deploy_helpers import tiny_classifier

    return tiny_classifier(tiny_bert, tmp_path_factory.mktemp("run") / "hf_model")


@pytest.fixture(scope="session")
def no_dropout_bert(tiny_bert, tmp_path_factory) -> str:
    """tiny_bert without dropout, for runs that must compute exactly the same update."""
    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    shutil.copytree(tiny_bert, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory) -> str:
    return str(save_tiny(tmp_path_factory.mktemp("tiny-distilbert"), "distilbert"))


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory) -> str:
    return str(save_tiny(tmp_path_factory.mktemp("tiny-roberta"), "roberta"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One tokenization cache for the session: its keys hold the source, tokenizer and options,
    so tests that tokenize the same data share the work and others never collide."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch, shared_cache):
    """Logs of each test go to its own folder, never into the repository; the default cache
    folder (.cache/tokenized) is the session's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "tokenized").symlink_to(shared_cache, target_is_directory=True)


@pytest.fixture(scope="session")
def trained_runs(tiny_distilbert, tmp_path_factory, shared_cache) -> dict:
    """Two real runs of the CLI, full fine-tuning and LoRA, shared by the tests that read what a
    run leaves behind (events, hparams, checkpoints, exports, reports). Tests that change a run
    folder work on a copy."""
    from tests.helpers import CONFIGS, shared_run_args
    from train import main

    workdir = tmp_path_factory.mktemp("runs")

    def fit(name: str, *extra: str):
        return main(shared_run_args(tiny_distilbert, workdir, shared_cache, 2, *extra,
                                    "--trainer.logger.init_args.name", name))

    return {"workdir": workdir, "full": fit("full"),
            "lora": fit("lora", "--config", str(CONFIGS / "overlays" / "lora.yaml"))}
