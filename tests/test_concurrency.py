"""Runs started together on one machine never share a log folder or corrupt the data cache."""

import json
import threading

from datamodules.classification import TextClassificationDataModule
from plugins.logger import ClaimingTensorBoardLogger


def test_loggers_started_together_claim_different_folders(tmp_path):
    barrier = threading.Barrier(8)
    versions = []

    def start():
        logger = ClaimingTensorBoardLogger(save_dir=tmp_path, name="race")
        barrier.wait()
        versions.append(logger.version)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(8))


def test_two_runs_preparing_the_same_cache_both_succeed(tiny_bert, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(
        json.dumps({"text": f"review {i} was good", "label": i % 2}) + "\n" for i in range(400)))
    modules = [TextClassificationDataModule(tiny_bert, ["neg", "pos"], data_dir=str(data),
                                            max_length=32, num_workers=0, cache_dir=str(tmp_path / "cache"))
               for _ in range(2)]
    errors = []

    def prepare(dm):
        try:
            dm.prepare_data()
        except Exception as err:  # noqa: BLE001 - the test reports any failure of either run
            errors.append(err)

    threads = [threading.Thread(target=prepare, args=(dm,)) for dm in modules]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for dm in modules:
        dm.setup("fit")
    assert modules[0].splits["train"]["input_ids"] == modules[1].splits["train"]["input_ids"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [modules[0].cache_path.name]
