"""What a distillation adds to the data: the teacher's logits cached once per text (equal to its
live ones on any batch; keyed by the teacher's weights), and unlabelled texts joining the
training split."""

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from datamodules.teacher_logits import logits_path
from lightning_modules.distill_teacher import Teacher
from tests.distill_helpers import easy_rows, trained_teacher
from tests.helpers import classification_dm, prepared, write_rows

FP32 = torch.zeros(())  # the student's weight the teacher follows: fp32 on the CPU


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> str:
    return trained_teacher(tmp_path_factory.mktemp("distill-data") / "teacher")


def test_cached_logits_equal_the_teachers_live_ones_and_later_runs_read_them(teacher_dir, tiny_bert,
                                                                              tmp_path):
    teacher = Teacher(Path(teacher_dir), trust_remote_code=False)
    runs = []

    def compute(loader):
        runs.append(len(loader))
        return torch.cat([teacher.logits(batch, FP32) for batch in loader]).numpy()

    def data_module(precision: str):
        dm = prepared(classification_dm(tiny_bert, str(tmp_path / "data"), batch_size=8,
                                        cache_dir=str(tmp_path / "cache")))
        dm.add_teacher_logits(teacher_dir, precision, compute)
        return dm

    write_rows(tmp_path / "data", easy_rows(80))
    dm = data_module("32-true")
    assert runs == [len(dm.splits["train"]) // 16 + 1]  # once, in eval batches of 16
    seen = 0
    for batch in dm.train_dataloader():  # shuffled and packed otherwise than when they were cached
        cached = batch.pop("teacher_logits")
        torch.testing.assert_close(cached, teacher.logits(batch, FP32), rtol=1e-5, atol=1e-6)
        seen += len(cached)
    assert seen == len(dm.splits["train"]) == 72
    again = data_module("32-true")
    assert len(runs) == 1  # read from the cache, not computed again
    assert again.splits["train"]["teacher_logits"] == dm.splits["train"]["teacher_logits"]
    data_module("bf16-mixed")
    assert len(runs) == 2  # another precision, other logits


@pytest.mark.parametrize("source", ["unused", "unsup", "file"])
def test_unlabelled_texts_join_the_training_split_without_labels(source, tiny_bert, tmp_path):
    folder = tmp_path / "data"
    write_rows(folder, easy_rows(60))
    write_rows(folder, [{"text": f"an unlabelled review {i}"} for i in range(30)], name="unsup.jsonl")
    (tmp_path / "more.txt").write_text("".join(f"one more text {i}\n\n" for i in range(30)))
    unlabelled = {"unused": "unused", "unsup": "unsup", "file": str(tmp_path / "more.txt")}[source]
    dm = prepared(classification_dm(tiny_bert, str(folder), limit_train_samples=20, unlabelled=unlabelled,
                                    limit_unlabelled_samples=25, cache_dir=str(tmp_path / "cache")))
    labels = Counter(dm.splits["train"]["labels"])
    assert labels[-100] == 25  # of 34 unused rows (60 less 6 held out and 20 drawn), 30 unsup, 30 lines
    assert labels[0] + labels[1] == 20 and len(dm.splits["validation"]) == 6
    assert -100 not in dm.splits["validation"]["labels"]
    texts = dm.splits["train"]["text"]
    assert len(set(texts)) == len(texts)  # no training text twice, none of validation's
    assert not set(texts) & set(dm.splits["validation"]["text"])


def test_a_retrained_teacher_of_the_same_size_and_times_is_another_cache_entry(teacher_dir, tmp_path):
    """The key is the weights' content: other weights in the same file, of the same size, with
    the file's times put back, do not reuse the old teacher's logits."""
    teacher = shutil.copytree(teacher_dir, tmp_path / "teacher")
    before = logits_path(str(tmp_path / "cache"), "data", str(teacher), "32-true")
    files = {path: path.stat() for path in teacher.iterdir()}
    weights = load_file(teacher / "model.safetensors")
    weights["classifier.bias"] += 1.0
    save_file(weights, teacher / "model.safetensors", metadata={"format": "pt"})
    for path, was in files.items():
        os.utime(path, ns=(was.st_atime_ns, was.st_mtime_ns))
        assert path.stat().st_size == was.st_size
    assert logits_path(str(tmp_path / "cache"), "data", str(teacher), "32-true") != before
