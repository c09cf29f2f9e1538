"""LoRA and freezing on tiny BERT and DistilBERT: what trains, what errors, what is saved."""

import pytest

from lightning_modules.adapters import LoraSettings
from lightning_modules.classification import SequenceClassifier

HEADS = {"bert": {"classifier", "bert.pooler.dense"}, "distilbert": {"classifier", "pre_classifier"}}
ADAPTED = {"bert": {"query", "value"}, "distilbert": {"q_lin", "v_lin"}}
LAYER_PREFIX = {"bert": "bert.encoder.layer.", "distilbert": "distilbert.transformer.layer."}


@pytest.fixture(params=["bert", "distilbert"])
def arch_dir(request, tiny_bert, tiny_distilbert):
    return request.param, tiny_bert if request.param == "bert" else tiny_distilbert


def trainable(module) -> list[str]:
    return [n for n, p in module.model.named_parameters() if p.requires_grad]


def test_lora_trains_only_adapters_and_head(arch_dir):
    arch, path = arch_dir
    module = SequenceClassifier(path, ["a", "b"], lora=LoraSettings())
    names = trainable(module)
    adapters = [n for n in names if ".lora_" in n]
    heads = [n for n in names if ".modules_to_save." in n]
    assert adapters and heads and len(adapters) + len(heads) == len(names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in adapters} == ADAPTED[arch]
    # the tiny checkpoint has no pooler, so BERT's pooler is fresh and trains beside the head
    assert {n.split(".modules_to_save.")[0].removeprefix("base_model.model.") for n in heads} == HEADS[arch]
    assert sum(p.numel() for p in module.model.parameters() if p.requires_grad) < \
        0.2 * sum(p.numel() for p in module.model.parameters())


def test_freezing_layers_freezes_exactly_those(arch_dir):
    arch, path = arch_dir
    module = SequenceClassifier(path, ["a", "b"], freeze_layers=1, freeze_embeddings=True)
    for name, param in module.model.named_parameters():
        frozen = name.startswith(LAYER_PREFIX[arch] + "0.") or ".embeddings." in name
        assert param.requires_grad != frozen, name


def test_freezing_combines_with_lora(arch_dir):
    arch, path = arch_dir
    module = SequenceClassifier(path, ["a", "b"], lora=LoraSettings(), freeze_layers=1)
    names = trainable(module)
    assert not any(f"{LAYER_PREFIX[arch]}0." in n for n in names)
    assert any(f"{LAYER_PREFIX[arch]}1." in n and ".lora_" in n for n in names)
