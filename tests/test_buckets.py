"""Length buckets: every text once per epoch, few padded shapes, less padding, DDP shards."""

import json
import math
import random

import pytest

from datamodules.buckets import BucketSampler
from datamodules.classification import TextClassificationDataModule

LENGTHS = [random.Random(0).randint(1, 512) for _ in range(1003)]
N = len(LENGTHS)


def chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def bucket(i: int) -> int:
    return math.ceil(LENGTHS[i] / 64)


def test_one_process_sees_every_text_once_in_single_bucket_batches():
    sampler = BucketSampler(range(N), LENGTHS, batch_size=8, width=64, seed=1)
    indices = list(sampler)
    assert sorted(indices) == list(range(N)) and len(sampler) == N
    mixed = [b for b in chunks(indices, 8) if len({bucket(i) for i in b}) > 1]
    assert len(mixed) <= 8  # only the pooled leftovers of the 8 buckets may mix
    assert len(chunks(indices, 8)[-1]) == N % 8 == 3


def test_order_is_a_function_of_seed_and_epoch():
    def order(seed, epoch):
        sampler = BucketSampler(range(N), LENGTHS, batch_size=8, width=64, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)


def test_processes_get_disjoint_equal_shares_of_full_batches():
    shares = [list(BucketSampler(range(N), LENGTHS, batch_size=8, width=64, num_replicas=3,
                                 rank=r, seed=1)) for r in range(3)]
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == N // 8 // 3 * 8
    assert len(set().union(*shares)) == sum(map(len, shares))


@pytest.fixture
def varied_texts(tmp_path):
    rng = random.Random(0)
    rows = [{"text": " ".join(["good"] * rng.randint(1, 120)), "label": i % 2} for i in range(400)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp_path / "data")


def padding(dm) -> tuple[float, set[int]]:
    real = total = 0
    widths = set()
    for batch in dm.train_dataloader():
        real += int(batch["attention_mask"].sum())
        total += batch["input_ids"].numel()
        widths.add(batch["input_ids"].shape[1])
    return 1 - real / total, widths


def test_buckets_bound_the_shapes_and_cut_the_padding(tiny_bert, varied_texts, tmp_path):
    def module(**options):
        dm = TextClassificationDataModule(tiny_bert, ["neg", "pos"], data_dir=varied_texts,
                                          max_length=128, batch_size=16, num_workers=0,
                                          cache_dir=str(tmp_path / "cache"), **options)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    random_padding, _ = padding(module())
    bucket_padding, widths = padding(module(bucket_width=32))
    assert widths <= {32, 64, 96, 128}
    assert bucket_padding < random_padding / 2, (bucket_padding, random_padding)
