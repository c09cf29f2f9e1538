"""Tiny random BERT / DistilBERT / RoBERTa model folders with a small WordPiece vocab: real architectures,
real tokenizer machinery, seconds to train."""

import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
)

from datamodules.synthetic import ADJECTIVES, FILLERS, SUBJECTS

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


def save_tiny(path: Path, arch: str, head_size: int = 32) -> Path:
    """Two layers of two heads; `head_size` 26 gives TinyBERT's head shape (312 / 12)."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    size = len(tokenizer)
    if arch == "bert":
        model = BertForMaskedLM(BertConfig(
            vocab_size=size, hidden_size=2 * head_size, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=256, max_position_embeddings=128))
    elif arch == "roberta":  # an MLM head of another shape (`lm_head`), for code that must not care
        model = RobertaForMaskedLM(RobertaConfig(
            vocab_size=size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=256, max_position_embeddings=130, pad_token_id=0))
    else:
        model = DistilBertForMaskedLM(DistilBertConfig(
            vocab_size=size, dim=64, n_layers=2, n_heads=2, hidden_dim=256,
            max_position_embeddings=128))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
