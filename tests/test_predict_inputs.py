"""predict.py's bad inputs, each refused in one line naming what is wrong: files (missing, not
text, no text in a row, an unknown format), model folders (a masked LM, a LoRA adapter, no ONNX
files, no ONNX Runtime); blank lines of a .txt file are skipped with one line saying so."""

import gzip
import json
import re
import sys

import pytest

from core.errors import UserError
from deploy.prediction import predict
from tests.deploy_helpers import (
    one_torch_thread,  # noqa: F401 (autouse)
    read_rows,
)
from tests.helpers import forked_train_py

FILES = {  # name, content, what the one line says
    "missing": ("none.txt", None, "input file '{path}' does not exist"),
    "unknown format": ("reviews.docx", b"PK\x03\x04", "has an unknown format; use one of"),
    "not text": ("reviews.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff", "line 1 is not UTF-8 text"),
    "empty": ("reviews.txt", b"", "input file '{path}' is empty"),
    "only blank lines": ("reviews.txt", b"\n  \n", "input file '{path}' holds no text"),
    "named .gz, not gzip": ("reviews.txt.gz", b"a review\n", "named .gz but not gzip-compressed"),
    "JSON row without text": ("r.jsonl", b'{"text": "fine"}\n{"text": " "}\n',
                              "r.jsonl row 2: missing 'text' (only whitespace): every row needs a text"),
    "JSON row with a list": ("r.jsonl", b'{"text": ["a", "b"]}\n', "row 1: column 'text' holds a list"),
    "not JSON Lines": ("r.jsonl", b'{"text": "fine"}\n[1, 2\n', "r.jsonl line 2 is not JSON"),
    "a lone surrogate": ("r.jsonl", b'{"text": "fine"}\n{"text": "bad \\ud800"}\n',
                         "r.jsonl row 2: column 'text' holds '\\ud800' at character 5, a lone surrogate"),
    "CSV without the column": ("r.csv", b"review\nfine\n", "has no column 'text'; columns are ['review']"),
    "CSV row of another width": ("r.csv", b'text\nfine\n"a","b"\n', "r.csv row 2 has 2 fields, its header 1"),
}


@pytest.mark.parametrize("case", FILES)
def test_a_bad_input_file_is_refused_in_one_line(case, export, tmp_path):
    name, content, message = FILES[case]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as err:
        predict(str(export), str(path), str(tmp_path / "out.csv"))
    assert message.format(path=path) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out.csv").exists()  # refused before any output


def test_blank_lines_of_a_txt_file_are_skipped_with_one_line_saying_so(export, tmp_path, caplog):
    source = tmp_path / "reviews.txt.gz"
    with gzip.open(source, "wt") as f:
        f.write("a good movie\n\n   \nthe plot was dull\n\n")
    predict(str(export), str(source), str(tmp_path / "out.jsonl"))
    assert [row["text"] for row in read_rows(tmp_path / "out.jsonl")] == ["a good movie", "the plot was dull"]
    notes = [r.getMessage() for r in caplog.records if "blank line" in r.getMessage()]
    assert notes == [f"{source}: skipped 3 blank line(s) (line 2, 3, 5); each output row holds its text"]


def test_a_max_length_past_the_models_limit_is_refused_in_one_line(export, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a good movie\n")
    with pytest.raises(UserError, match=r"--max_length=129 is out of range: expected at most the model's "
                                        r"limit, 128 tokens"):
        predict(str(export), str(source), str(tmp_path / "out.csv"), max_length=129)


def adapter_folder(folder):
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    return folder


MODELS = {  # the folder, the runtime, what the one line says
    "a masked LM": (lambda c: c["tiny_bert"], "torch", "is a masked language model (BertForMaskedLM)"),
    "a LoRA adapter": (lambda c: adapter_folder(c["tmp"] / "adapter"), "torch", "holds a LoRA adapter only"),
    "no such folder": (lambda c: c["tmp"] / "none", "torch", "does not exist"),
    "no ONNX files": (lambda c: c["export"], "onnx-int8",
                      "has no onnx/model.int8.onnx: write it with python export.py onnx"),
}


@pytest.mark.parametrize("case", MODELS)
def test_a_model_folder_that_cannot_predict_is_refused_in_one_line(case, export, tiny_bert, tmp_path):
    folder, runtime, message = MODELS[case]
    source = tmp_path / "in.txt"
    source.write_text("a good movie\n")
    where = folder({"tiny_bert": tiny_bert, "tmp": tmp_path, "export": export})
    with pytest.raises(UserError, match=re.escape(message)) as err:
        predict(str(where), str(source), str(tmp_path / "out.csv"), runtime=runtime)
    assert "\n" not in str(err.value)


def test_the_onnx_runtime_without_onnxruntime_names_the_extra(export, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    source = tmp_path / "in.txt"
    source.write_text("a good movie\n")
    with pytest.raises(UserError, match=re.escape("needs onnxruntime, which is not installed: "
                                                  "pip install -e '.[onnx]'")):
        predict(str(export), str(source), str(tmp_path / "out.csv"), runtime="onnx")


def test_the_command_ends_with_one_error_line_and_status_1(export, tmp_path):
    stderr = tmp_path / "stderr"
    process = forked_train_py([str(export), str(tmp_path / "none.txt")], stderr, script="predict.py")
    process.join(120)
    assert process.exitcode == 1
    last = stderr.read_text().strip().splitlines()[-1]
    assert last == f"error: input file '{tmp_path / 'none.txt'}' does not exist"
