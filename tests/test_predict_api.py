"""The public Python API of a deployed model and what predict.py adds around it: `deploy.classifier.load`
answering as `transformers.pipeline("text-classification")` does, the columns kept beside each prediction
(a .txt file's line numbers), the count of texts cut at max_length, the output's extension, the record
beside the output that a resume is checked against (and the CPU path it goes on with), the threads a
loaded model runs on, and --device cuda where there is none."""

import csv
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

import deploy.cpu_paths
from core.errors import UserError
from deploy.classifier import load
from deploy.output import record_path
from deploy.prediction import predict
from tests.deploy_helpers import (
    LABELS,
    one_torch_thread,  # noqa: F401 (autouse)
    other_threads_around,
    probabilities,
    read_rows,
    reference_probs,
    texts,
    write_jsonl,
)


@pytest.fixture(autouse=True)
def tokenizer_pool_restored(monkeypatch):
    """Loading a model sets RAYON_NUM_THREADS for the whole process; here it is put back after each
    test, and starts at a value no test asks for, so that a load that leaves it is seen."""
    monkeypatch.setenv("RAYON_NUM_THREADS", "7")


def clear_texts(export, n: int = 12) -> list[str]:
    """Texts whose two probabilities are apart by more than float noise, so that their order (and a
    label) is the same in any two computations."""
    items = texts(40, seed=4)
    probs = reference_probs(export, items)
    clear = [text for text, p in zip(items, probs) if abs(p[1] - p[0]) > 1e-4]
    assert len(clear) >= n
    return clear[:n]


def assert_same_answers(found, expected) -> None:
    """The same nesting, labels and order; scores within float noise."""
    assert type(found) is type(expected) and len(found) == len(expected)
    for ours, theirs in zip(found, expected):
        if isinstance(theirs, list):
            assert_same_answers(ours, theirs)
        else:
            assert set(ours) == {"label", "score"} and ours["label"] == theirs["label"]
            assert abs(ours["score"] - theirs["score"]) < 1e-6


@pytest.mark.parametrize("single, top_k", [(True, 1), (False, 1), (True, None), (False, None), (False, 2)])
def test_a_loaded_export_answers_as_the_transformers_pipeline_does(export, single, top_k):
    items = clear_texts(export)
    # both labels come first somewhere, so the order within each answer counts
    assert {LABELS[i] for i in reference_probs(export, items).argmax(1)} == set(LABELS)
    given = items[0] if single else items
    reference = pipeline("text-classification", model=str(export), device="cpu")
    options = {} if top_k == 1 else {"top_k": top_k}
    expected = reference(given, truncation=True, **options)
    assert_same_answers(load(export)(given, **options), expected)


@pytest.mark.parametrize("call", [lambda model: model(["a good film"], top_k=0),
                                  lambda model: model(["a good film"], top_k=True),
                                  lambda model: model([1])], ids=["top_k=0", "top_k=True", "texts=[1]"])
def test_a_bad_top_k_or_a_text_that_is_no_string_is_one_user_error(export, call):
    with pytest.raises(UserError) as err:
        call(load(export))
    assert "\n" not in str(err.value)


def write_csv(path, header: list[str], rows: list[list]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def test_kept_columns_come_before_the_text_in_input_order(export, tmp_path):
    items = texts(20, seed=6)
    ids = [f"r{(7 * i) % 20}" for i in range(len(items))]  # not sorted: the rows must keep input order
    source = write_csv(tmp_path / "in.csv", ["id", "text", "extra"],
                       [[i, text, "x"] for i, text in zip(ids, items)])
    out = tmp_path / "out.csv"
    predict(str(export), source, str(out), keep_columns=["id"], batch_size=4, chunk_size=8)
    with open(out, newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == ["id", "text", "label", "prob_neg", "prob_pos"]
    rows = read_rows(out)
    assert [row["id"] for row in rows] == ids and [row["text"] for row in rows] == items
    np.testing.assert_allclose(probabilities(rows), reference_probs(export, items), atol=1e-6)


def test_a_missing_kept_column_is_one_user_error_naming_it(export, tmp_path):
    source = write_csv(tmp_path / "in.csv", ["id", "text"], [["1", "a good film"]])
    with pytest.raises(UserError, match=r"no column 'nope'.*--keep_columns") as err:
        predict(str(export), source, str(tmp_path / "out.csv"), keep_columns=["nope"])
    assert "\n" not in str(err.value) and not (tmp_path / "out.csv").exists()


def test_kept_columns_of_a_txt_file_are_refused(export, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a good film\n")
    with pytest.raises(UserError, match=r"--keep_columns.*\.txt file"):
        predict(str(export), str(source), str(tmp_path / "out.csv"), keep_columns=["id"])


def test_a_txt_files_rows_keep_their_line_numbers_past_blank_lines(export, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a good film\n\nthe plot was dull\n   \n\nreally great\n")
    out = tmp_path / "out.csv"
    predict(str(export), str(source), str(out))
    rows = read_rows(out)
    assert list(rows[0]) == ["line", "text", "label", "prob_neg", "prob_pos"]
    assert [(row["line"], row["text"]) for row in rows] == [
        ("1", "a good film"), ("3", "the plot was dull"), ("6", "really great")]


def test_the_texts_cut_at_max_length_are_counted_and_logged(export, tmp_path, caplog):
    items = texts(30, seed=7)
    tokenizer = AutoTokenizer.from_pretrained(export)
    longer = sum(len(tokenizer(text)["input_ids"]) > 8 for text in items)
    assert 0 < longer < len(items)
    source = str(write_jsonl(tmp_path / "in.jsonl", items))
    with caplog.at_level(logging.INFO, logger="deploy.prediction"):
        found = predict(str(export), source, str(tmp_path / "out.csv"), max_length=8, chunk_size=8)
    assert found["cut"] == longer
    last = [r.getMessage() for r in caplog.records if r.name == "deploy.prediction"][-1]
    assert last.startswith("predicted 30 texts") and f"{longer} cut at 8 tokens" in last


def test_an_output_that_is_neither_csv_nor_jsonl_is_refused_before_anything_is_written(export, tmp_path):
    source = str(write_jsonl(tmp_path / "in.jsonl", ["a good film"]))
    out = tmp_path / "x.json"
    with pytest.raises(UserError, match=r"\.csv or \.jsonl") as err:
        predict(str(export), source, str(out))
    assert "\n" not in str(err.value)
    assert not out.exists() and not record_path(out).exists()


def test_resume_refuses_an_output_of_another_max_length_or_other_weights(export, tmp_path):
    source = str(write_jsonl(tmp_path / "in.jsonl", texts(8, seed=8)))
    out = tmp_path / "out.csv"
    predict(str(export), source, str(out), max_length=128)
    written = out.read_bytes()
    with pytest.raises(UserError, match="max_length 128.*max_length 8") as err:
        predict(str(export), source, str(out), max_length=8, resume=True)
    assert "\n" not in str(err.value)
    other = tmp_path / "other" / "hf_model"
    shutil.copytree(export, other)
    model = AutoModelForSequenceClassification.from_pretrained(other)
    with torch.no_grad():
        model.classifier.bias.add_(0.5)
    model.save_pretrained(other)
    with pytest.raises(UserError, match="weights_sha256") as err:
        predict(str(other), source, str(out), max_length=128, resume=True)
    assert "\n" not in str(err.value) and "runtime" not in str(err.value).split("this run has")[1]
    assert out.read_bytes() == written


def test_resume_refuses_an_output_with_no_record_of_what_wrote_it(export, tmp_path):
    source = str(write_jsonl(tmp_path / "in.jsonl", texts(8, seed=8)))
    out = tmp_path / "out.csv"
    predict(str(export), source, str(out))
    record_path(out).unlink()
    with pytest.raises(UserError, match="no record of what wrote it") as err:
        predict(str(export), source, str(out), resume=True)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("left", [b"", b"text,la"], ids=["empty", "torn header"])
def test_resuming_an_output_without_a_whole_header_writes_it_all_again(export, tmp_path, monkeypatch, left):
    # each run on PyTorch's own fp32 path: a probe of two close paths may choose either, 1e-8 apart
    monkeypatch.setattr(deploy.cpu_paths, "candidates", lambda: [deploy.cpu_paths.PLAIN])
    source = str(write_jsonl(tmp_path / "in.jsonl", texts(20, seed=9)))
    out = tmp_path / "out.csv"
    predict(str(export), source, str(out), batch_size=4, chunk_size=8)
    fresh = out.read_bytes()
    out.write_bytes(left)
    predict(str(export), source, str(out), batch_size=4, chunk_size=8, resume=True)
    assert out.read_bytes() == fresh


def test_a_resume_goes_on_with_the_cpu_path_its_output_was_begun_with(export, tmp_path, monkeypatch):
    """The record holds the path the probe chose: the resumed rows come from the same path, and the
    probe does not run again."""
    source = str(write_jsonl(tmp_path / "in.jsonl", texts(24, seed=10)))
    out = tmp_path / "out.csv"
    predict(str(export), source, str(out), batch_size=4, chunk_size=8)
    full = out.read_bytes()
    out.write_bytes(full[:len(full) * 2 // 3])  # whole rows and one torn by a kill

    def no_probe(*args):
        raise AssertionError("the CPU paths were probed again")

    monkeypatch.setattr(deploy.cpu_paths, "fastest", no_probe)
    predict(str(export), source, str(out), batch_size=4, chunk_size=8, resume=True)
    assert out.read_bytes() == full


def test_threads_set_pytorchs_threads_and_the_tokenizers_pool(export):
    other_threads_around()
    load(export, threads=1)
    assert torch.get_num_threads() == 1 and os.environ["RAYON_NUM_THREADS"] == "1"


def test_device_cuda_without_cuda_is_one_user_error(export, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    source = str(write_jsonl(tmp_path / "in.jsonl", ["a good film"]))
    out = tmp_path / "out.csv"
    for run in (lambda: load(export, device="cuda"),
                lambda: predict(str(export), source, str(out), device="cuda")):
        with pytest.raises(UserError, match="--device cuda") as err:
            run()
        assert "\n" not in str(err.value)
    assert not out.exists()


def test_no_texts_get_no_answers(export):
    assert load(export)([]) == [] and load(export)([], top_k=None) == []
