"""Masked-language modelling: blocks, masking, fixed validation masks, learning, export, reuse."""

import json

import pytest
import torch
from lightning import Trainer
from transformers import AutoTokenizer, pipeline

from core.errors import UserError
from datamodules.masked_lm import MaskedLMDataModule
from datamodules.synthetic import generate
from lightning_modules.adapters import LoraSettings
from lightning_modules.classification import SequenceClassifier
from lightning_modules.masked_lm import MaskedLanguageModel


@pytest.fixture
def corpus(tmp_path):
    """Generated reviews as local split files: train and unsup (for training), test (validation)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, n, seed in (("train", 300, 0), ("unsup", 300, 1), ("test", 100, 2)):
        with open(folder / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in generate(n, seed))
    return folder


def make_dm(tokenizer, corpus, **options):
    options = {"data_dir": str(corpus), "block_size": 32, "batch_size": 16, "num_workers": 0,
               **options}
    dm = MaskedLMDataModule(tokenizer=tokenizer, **options)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_blocks_have_block_size_and_keep_all_text_but_the_remainder(tiny_bert, corpus):
    dm = make_dm(tiny_bert, corpus)
    texts = [json.loads(line)["text"] for split in ("train", "unsup")
             for line in open(corpus / f"{split}.jsonl")]
    stream = [t for ids in dm.tokenizer(texts)["input_ids"] for t in ids]
    blocks = dm.splits["train"]["input_ids"]
    assert all(len(b) == 32 for b in blocks)
    assert len(stream) - len(blocks) * 32 < 32
    assert [t for b in blocks for t in b] == stream[:len(blocks) * 32]


def test_masking_rate_and_specials_never_masked(tiny_bert, corpus):
    dm = make_dm(tiny_bert, corpus)
    specials = torch.tensor(dm.tokenizer.all_special_ids)
    masked = maskable = 0
    for _ in range(5):
        for batch in dm.train_dataloader():
            original = torch.where(batch["labels"] == -100, batch["input_ids"], batch["labels"])
            is_special = torch.isin(original, specials)
            chosen = batch["labels"] != -100
            assert not (chosen & is_special).any()
            masked += int(chosen.sum())
            maskable += int((~is_special).sum())
    assert maskable > 50_000
    assert abs(masked / maskable - 0.15) < 0.015


def test_whole_word_masking_masks_all_pieces_of_a_word(tiny_bert, tmp_path):
    corpus = tmp_path / "words"
    corpus.mkdir()
    rows = [{"text": f"{row['text']} an extraordinary, unforgettable spectacle"} for row in generate(200, 0)]
    (corpus / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dm = make_dm(tiny_bert, corpus, whole_word_mask=True, train_splits=["train"])
    batch = next(iter(dm.train_dataloader()))
    chosen = batch["labels"] != -100
    ids = torch.where(chosen, batch["labels"], batch["input_ids"])
    pieces = torch.tensor([tok.startswith("##") for tok in dm.tokenizer.convert_ids_to_tokens(
        list(range(len(dm.tokenizer))))])[ids]
    # a continuation piece ("##x") is chosen exactly when the piece before it is
    assert chosen.any() and pieces.any()
    assert torch.equal(chosen[:, 1:][pieces[:, 1:]], chosen[:, :-1][pieces[:, 1:]])


def test_validation_masks_are_fixed_across_epochs_and_runs(tiny_bert, corpus, tmp_path):
    dm = make_dm(tiny_bert, corpus)
    first = [b["input_ids"] for b in dm.val_dataloader()]
    second = [b["input_ids"] for b in dm.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = make_dm(tiny_bert, corpus, cache_dir=str(tmp_path / "other-cache"))
    assert other.splits["validation"]["labels"] == dm.splits["validation"]["labels"]
    mask_id = dm.tokenizer.mask_token_id
    assert any((b == mask_id).any() for b in first)


def test_missing_split_is_named(tiny_bert, corpus):
    with pytest.raises(UserError, match=r"no split 'extra'; splits are \['test', 'train', 'unsup'\]"):
        make_dm(tiny_bert, corpus, train_splits=["train", "extra"])


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    """A tiny MLM trained briefly, validated before and after, and exported."""
    tmp = tmp_path_factory.mktemp("mlm")
    corpus = tmp / "corpus"
    corpus.mkdir()
    with open(corpus / "train.jsonl", "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in generate(600, 0))
    torch.manual_seed(0)
    dm = MaskedLMDataModule(tokenizer=tiny_bert, data_dir=str(corpus), train_splits=["train"],
                            block_size=32, batch_size=16, num_workers=0, cache_dir=str(tmp / "cache"))
    module = MaskedLanguageModel(tiny_bert, learning_rate=2e-3)
    # validate() then fit() in one process: metric states made in inference mode would break fit
    trainer = Trainer(max_epochs=4, logger=False, enable_checkpointing=False, inference_mode=False,
                      enable_progress_bar=False, default_root_dir=tmp)
    before = trainer.validate(module, dm)[0]["val/perplexity"]
    trainer.fit(module, dm)
    after = trainer.validate(module, dm)[0]["val/perplexity"]
    export = tmp / "export"
    module.model.save_pretrained(export)
    dm.tokenizer.save_pretrained(export)
    return before, after, export, module.eval()


def test_tiny_model_perplexity_falls(trained):
    before, after, _, _ = trained
    assert after < 0.5 * before, (before, after)


def test_export_loads_into_fill_mask_pipeline(trained):
    """The pipeline ranks the trained model's own guesses, not an untrained model's."""
    _, _, export, module = trained
    text = "the movie was [MASK]."
    predictions = pipeline("fill-mask", model=str(export))(text)
    tokenizer = AutoTokenizer.from_pretrained(export)
    inputs = tokenizer(text, return_tensors="pt")
    position = inputs["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    with torch.no_grad():
        probs = module.model(**inputs).logits[0, position].softmax(-1)
    top = probs.topk(5)
    assert [p["token"] for p in predictions] == top.indices.tolist()
    assert [p["score"] for p in predictions] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_classifier_starts_from_the_mlm_export(trained, caplog):
    """Every weight of the trained encoder reaches the classifier; only pooler and head are new."""
    _, _, export, mlm = trained
    with caplog.at_level("INFO"):
        module = SequenceClassifier(str(export), ["neg", "pos"])
    assert "has no weights for bert.pooler.dense, classifier: created fresh" in caplog.text
    encoder = {n: p for n, p in module.model.named_parameters()
               if n.startswith("bert.") and not n.startswith("bert.pooler.")}
    assert encoder and all(torch.equal(p, mlm.model.get_parameter(n)) for n, p in encoder.items())


@pytest.mark.parametrize("arch,lora", [("bert", None), ("distilbert", None), ("roberta", None),
                                       ("bert", LoraSettings())])
def test_head_at_masked_positions_only_matches_the_full_forward(arch, lora, request, corpus):
    """Same loss and same gradients as Hugging Face's forward over every position, with the
    model's own vocabulary projection fed the masked positions alone, whatever its head."""
    backbone = request.getfixturevalue(f"tiny_{arch}")
    dm = make_dm(backbone, corpus)
    batch = next(iter(dm.train_dataloader()))
    module = MaskedLanguageModel(backbone=backbone, lora=lora)
    module.model.eval()  # no dropout, so both passes compute the same function
    projected = []
    module.model.get_output_embeddings().register_forward_hook(
        lambda _, args, out: projected.append(args[0].shape[:-1].numel()))
    trainable = [p for p in module.model.parameters() if p.requires_grad]

    full = module.model(**batch).loss
    full_grads = torch.autograd.grad(full, trainable)
    logits, targets = module.masked_logits(batch)
    sparse = torch.nn.functional.cross_entropy(logits, targets)
    sparse_grads = torch.autograd.grad(sparse, trainable)

    assert len(targets) == int((batch["labels"] != -100).sum()) > 0
    assert projected == [batch["labels"].numel(), len(targets)]  # full forward, then masked only
    assert logits.shape == (len(targets), len(dm.tokenizer))
    torch.testing.assert_close(sparse, full, rtol=1e-5, atol=1e-6)
    for a, b in zip(sparse_grads, full_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
