"""Hermetic fixtures: tiny random BERT / DistilBERT model folders with a small WordPiece vocab."""

import json
import os
import shutil
import string
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForMaskedLM,
)

from datamodules.synthetic import ADJECTIVES, FILLERS, SUBJECTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_vocab() -> list[str]:
    """Specials, characters (so no text is all [UNK]) and the quickstart's words."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = {w.strip(".,").lower() for text in [*SUBJECTS, *FILLERS, *sum(ADJECTIVES, [])]
             for w in text.split()}
    words |= {"was", "not", "but", "truly", "really", "rather", "quite", "simply", "movie", "good",
              "bad", "great", "film", "the", "a", "and", "it", "is", "this"}
    return SPECIALS + chars + ["##" + c for c in chars] + sorted(words - set(chars))


def tiny_tokenizer() -> BertTokenizerFast:
    vocab = {token: i for i, token in enumerate(tiny_vocab())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=tok, model_max_length=128)


def save_tiny(path: Path, arch: str) -> Path:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    size = len(tokenizer)
    if arch == "bert":
        model = BertForMaskedLM(BertConfig(
            vocab_size=size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=256, max_position_embeddings=128))
    else:
        model = DistilBertForMaskedLM(DistilBertConfig(
            vocab_size=size, dim=64, n_layers=2, n_heads=2, hidden_dim=256,
            max_position_embeddings=128))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return str(save_tiny(tmp_path_factory.mktemp("tiny-bert"), "bert"))


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


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Logs and caches of each test go to its own folder, never into the repository."""
    monkeypatch.chdir(tmp_path)
