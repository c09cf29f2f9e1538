"""Every bad input of a distillation stops the real CLI with one `error:` line naming it, before any
training: the teacher (missing, no model, no classifier, other labels, other vocabulary), the
options (weights, layer map, kept layers, heads, relation heads, stages) and unlabelled texts."""

import json
import shutil
from pathlib import Path

import pytest

from core.errors import exit_on_user_error
from tests.distill_helpers import LABELS, classifier
from tests.helpers import CONFIGS, QUICKSTART
from train import main

OVERLAY = str(CONFIGS / "overlays" / "distill.yaml")


def other_vocabulary(teacher: str, folder: Path) -> str:
    shutil.copytree(teacher, folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["model"]["vocab"]["zebra"] = len(spec["model"]["vocab"])
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    return str(folder)


@pytest.fixture(scope="module")
def teacher(tiny_bert, tmp_path_factory) -> str:
    return classifier(tiny_bert, tmp_path_factory.mktemp("distill-errors") / "teacher", LABELS)


def cases(tiny_bert: str, teacher: str, tmp: Path) -> dict:
    """name -> a function writing what the case needs, returning (arguments, the line's words)."""
    def of(folder: str, *more: str) -> list[str]:
        return ["--config", OVERLAY, "--model.teacher", folder, *more]

    def distil(*more: str) -> list[str]:
        return of(teacher, *more)

    def empty_folder():
        (tmp / "empty").mkdir()
        return of(str(tmp / "empty")), "holds no config.json, so it is no model"

    weights = ["--model.distill.label_weight", "0", "--model.distill.logit_weight", "0"]
    return {
        "missing teacher": lambda: (
            of("/no/such/teacher"), "--model.teacher '/no/such/teacher' does not exist or is not a folder"),
        "teacher without a model": empty_folder,
        "teacher no classifier": lambda: (of(tiny_bert), "is a BertForMaskedLM, not a sequence classifier"),
        "teacher of other labels": lambda: (
            of(classifier(tiny_bert, tmp / "four", ["a", "b", "c", "d"])),
            "classifies into ['a', 'b', 'c', 'd'], but the data's labels are ['neg', 'pos']"),
        "teacher of another vocabulary": lambda: (
            of(other_vocabulary(teacher, tmp / "zebra")),
            f"has another vocabulary than backbone '{tiny_bert}'"),
        "distill without a teacher": lambda: (
            ["--config", OVERLAY], "--model.distill is set but --model.teacher is not"),
        "negative weight": lambda: (
            distil("--model.distill.logit_weight", "-1"),
            "--model.distill.logit_weight=-1.0 is out of range: expected a weight >= 0"),
        "every weight 0": lambda: (distil(*weights), "every --model.distill.*_weight is 0"),
        "layer map out of range": lambda: (
            distil("--model.distill.hidden_weight", "1", "--model.distill.layer_map", "[0, 2]"),
            "--model.distill.layer_map=[0, 2]: teacher layer 2 is out of range: the teacher has 2 layers, "
            "0-1"),
        "layer map of another length": lambda: (
            distil("--model.distill.hidden_weight", "1", "--model.distill.layer_map", "[0, 1, 1]"),
            "--model.distill.layer_map=[0, 1, 1] has 3 entries: expected one per student layer, 2"),
        "layer map that nothing reads": lambda: (
            distil("--model.distill.layer_map", "[0, 1]"),
            "--model.distill.layer_map=[0, 1] is read by the hidden, attention and MiniLM losses only"),
        "relation heads that divide no width": lambda: (
            distil("--model.distill.minilm_weight", "1", "--model.distill.relation_heads", "3"),
            "the MiniLM loss splits both models' attention into 3 relation heads, which do not divide the "
            "student's width 64"),
        "relation heads that nothing reads": lambda: (
            distil("--model.distill.relation_heads", "4"),
            "--model.distill.relation_heads=4 is read by the MiniLM loss only, and minilm_weight is 0"),
        "kept layers out of range": lambda: (
            distil("--model.keep_layers", "[1, 2]"),
            "--model.keep_layers=[1, 2]: layer 2 is out of range: this backbone has 2 encoder layers, 0-1"),
        "a kept layer twice": lambda: (
            distil("--model.keep_layers", "[1, 1]"), "--model.keep_layers=[1, 1] names layer 1 twice"),
        "kept layers out of order": lambda: (
            distil("--model.keep_layers", "[1, 0]"),
            "--model.keep_layers=[1, 0] is not in increasing order: layers keep their order, so list them as "
            "[0, 1]"),
        "a teacher of fewer positions": lambda: (
            of(classifier(tiny_bert, tmp / "short", LABELS, max_position_embeddings=32,
                          ignore_mismatched_sizes=True), "--data.max_length", "64"),
            "--data.max_length=64 is past the teacher's 32 positions"),
        "heads that differ": lambda: (
            of(classifier(tiny_bert, tmp / "four-heads", LABELS, num_attention_heads=4),
               "--model.distill.attention_weight", "1"), "the student has 2 and the teacher 4"),
        "no second stage": lambda: (
            distil("--model.distill.hidden_weight", "1", "--model.distill.intermediate_epochs", "1",
                   "--trainer.max_epochs", "1"),
            "--model.distill.intermediate_epochs=1 leaves no epoch of the second stage"),
        "unlabelled without a teacher": lambda: (["--data.unlabelled", "unsup"], "only a teacher can label"),
        "unlabelled texts of blank lines": lambda: (
            distil("--data.unlabelled", str(blank_lines(tmp))),
            f"--data.unlabelled '{tmp / 'blank.txt'}' holds no text (blank lines only)"),
        "unknown unlabelled texts": lambda: (
            distil("--data.unlabelled", "somewhere.csv"),
            "--data.unlabelled 'somewhere.csv' is neither unsup nor unused"),
    }


def blank_lines(tmp: Path) -> Path:
    (tmp / "blank.txt").write_text("\n  \n\n")
    return tmp / "blank.txt"


@pytest.mark.parametrize("name", list(cases("", "", Path())))
def test_a_bad_distillation_input_is_one_line_naming_it(name, tiny_bert, teacher, tmp_path, capsys):
    args, expected = cases(tiny_bert, teacher, tmp_path)[name]()
    logs = tmp_path / "logs"
    with pytest.raises(SystemExit) as stop:
        exit_on_user_error(lambda: main([
            "fit", "--config", QUICKSTART, "--model.backbone", tiny_bert, "--data.num_train", "32",
            "--data.num_test", "8", *args, "--trainer.logger.init_args.save_dir", str(logs)]))
    message = str(stop.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert expected in message, message
    assert "Traceback" not in capsys.readouterr().err
    assert not list(logs.rglob("*.ckpt"))
