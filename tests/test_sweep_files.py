"""Sweep files: every shipped one passes its checks, `--help` explains every option, and a bad one
is refused in one line, before any trial, naming what is wrong."""

import pytest

from core.errors import UserError
from sweeps.checks import check_sweep
from sweeps.spec import load, parser
from tests.helpers import CONFIGS, ROOT
from tests.sweep_helpers import BATCH, LR, sweep_file

BAD_FILES = [
    (
        {"params": {"model.init_args.learnin_rate": {"type": "float", "low": 1e-4, "high": 1e-2}}},
        "model.init_args.learnin_rate is not an option of train.py fit; "
        "closest: model.init_args.learning_rate",
    ),
    ({"params": {LR: {"type": "float", "low": 1e-2, "high": 1e-4}}}, f"sweep parameter {LR}: "),
    ({"params": {LR: {"type": "float", "low": 0.0, "high": 1e-2, "log": True}}}, f"sweep parameter {LR}: "),
    (
        {"params": {LR: {"type": "categorical", "choices": ["fast"]}}},
        f"sweep parameter {LR}: --{LR}=fast is refused: Expected a <class 'float'>",
    ),
    (
        {"params": {"trainer.max_epochs": {"type": "int", "low": 1.5, "high": 3}}},
        "sweep parameter trainer.max_epochs: an int parameter needs whole low and high",
    ),
    ({"objective": "val/accuracy"}, "sweep objective 'val/accuracy' is not logged by SequenceClassifier"),
    ({"configs": ["configs/no/such.yaml"]}, "sweep config configs/no/such.yaml does not exist"),
    ({"sampler": "grid"}, f"sampler grid searches choices only: make {LR} categorical"),
    ({"trials": 0}, "trials=0 is out of range"),
    ({"max_failures": 0}, "max_failures=0 is out of range"),
    (
        {"params": {BATCH: {"type": "categorical", "choices": [8, 12]}}, "validate_every_texts": 16},
        "validate_every_texts=16 is not a multiple of every batch size the trials can have (8, 12): "
        "use a multiple of 24",
    ),
    (
        {"params": {BATCH: {"type": "categorical", "choices": [0, 8]}}},
        f"sweep parameter {BATCH}: a batch size of 0 holds no text",
    ),
    (
        {"params": {"trainer.devices": {"type": "categorical", "choices": [1, 2]}}},
        "sweep parameter trainer.devices: a trial runs on one device (trainer.devices=2",
    ),
]


@pytest.mark.parametrize("change, message", BAD_FILES, ids=[m.split(":")[0][:40] for _, m in BAD_FILES])
def test_a_bad_sweep_file_is_one_line_naming_what_is_wrong(change, message, tmp_path):
    with pytest.raises(UserError) as caught:
        check_sweep(load(sweep_file(tmp_path, "minilm", **change)))
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("path", sorted((CONFIGS / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_file_passes_its_checks(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # their configs are named from the repository's root, as users run them
    sweep = load(["--config", str(path)])
    check_sweep(sweep)
    assert sweep.name == path.stem and sweep.seeds


def test_help_lists_every_option_with_its_meaning():
    text = " ".join(parser().format_help().split())
    for option, meaning in (("--trials", "trials to finish (complete or pruned)"),
                            ("--storage", "postgresql://user@host/db"), ("--workers", "one per GPU"),
                            ("--pruner", "median, successive_halving, hyperband or none"),
                            ("--seeds", "with each of these seeds")):
        assert option in text and meaning in text, option


def test_an_unknown_sweep_option_is_one_line(tmp_path):
    with pytest.raises(UserError, match="sweep file: .*trails") as caught:
        load([*sweep_file(tmp_path, "minilm"), "--trails=3"])
    assert "\n" not in str(caught.value)




@pytest.mark.parametrize("content, what", [("[a, b]\n", "a list"), ("b\n", "only 'b'"), ("", "nothing")])
def test_a_sweep_file_that_is_no_mapping_is_one_line_naming_it(content, what, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(content)
    with pytest.raises(UserError) as caught:
        load(["--config", str(path)])
    message = str(caught.value)
    assert message.startswith(f"sweep file {path} holds {what}, not a sweep: expected a mapping with name")
    assert "\n" not in message
