"""Backbone names, aliases and local folders, and the one-line errors when none loads."""

import time

import pytest

from core import pretrained as backbone
from core.errors import UserError


def test_aliases_resolve_to_hub_ids():
    assert backbone.resolve_backbone("distilbert") == "distilbert/distilbert-base-uncased"
    assert backbone.resolve_backbone("bert-base") == "google-bert/bert-base-uncased"
    assert backbone.resolve_backbone("tinybert") == "huawei-noah/TinyBERT_General_4L_312D"


def test_local_folder_resolves_and_loads(tiny_bert):
    assert backbone.resolve_backbone(tiny_bert) == tiny_bert
    assert backbone.load_tokenizer(tiny_bert)("good movie")["input_ids"][0] == 2


def test_unknown_backbone_offline_fails_fast_in_one_line():
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        backbone.load_tokenizer("nobody/no-such-model")
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "\n" not in message
    assert "'nobody/no-such-model'" in message and "not in the local Hugging Face cache" in message


def test_missing_local_folder_is_named(tmp_path):
    with pytest.raises(UserError, match="backbone directory '.*absent' does not exist"):
        backbone.resolve_backbone(str(tmp_path / "absent"))


def test_folder_without_config_is_named(tmp_path):
    with pytest.raises(UserError, match="has no config.json"):
        backbone.resolve_backbone(str(tmp_path))


def test_remote_code_is_never_run_unless_asked(tiny_bert, tmp_path):
    """A model folder that ships code: loading it must refuse, without importing that code."""
    import json
    import shutil

    from transformers import AutoModel

    folder = tmp_path / "with-code"
    shutil.copytree(tiny_bert, folder)
    marker = tmp_path / "code-ran"
    (folder / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import BertConfig\n"
        "class CustomConfig(BertConfig):\n    model_type = 'custom-bert'\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom.CustomConfig"}
    config["model_type"] = "custom-bert"  # only the shipped code knows it
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="trust_remote_code"):
        backbone.from_pretrained(AutoModel, str(folder), "model")
    assert not marker.exists()
