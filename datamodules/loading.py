"""DataLoaders whose position can be saved mid-epoch and whose order depends only on seed + epoch."""

import pyarrow.compute as pc
import torch
from lightning import Trainer
from torch.utils.data import Dataset, DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from datamodules.buckets import BucketSampler


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, collate_fn, num_workers: int,
                seed: int, trainer: Trainer | None = None,
                bucket_width: int | None = None) -> StatefulDataLoader:
    """A resumable loader: Lightning saves its position in every checkpoint.

    Shuffling uses a DistributedSampler over the trainer's processes (one without DDP): the order
    is a function of (seed, epoch) only, Lightning calls its `set_epoch`, and each rank takes
    every world_size-th sample of the same permutation, so a run resumed mid-epoch, or spread
    over more GPUs, sees the data in a reproducible order. The loader's own generator only seeds
    worker processes, so iterating never draws from the global RNG that dropout and masking use.
    With `bucket_width`, batches come from length buckets (`datamodules.buckets`), just as
    reproducibly.
    """
    sampler = None
    replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
    if shuffle and bucket_width:
        lengths = pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_pylist()
        sampler = BucketSampler(dataset, lengths, batch_size, bucket_width, replicas, rank, seed)
    elif shuffle:
        sampler = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=True, seed=seed)
    return StatefulDataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
        num_workers=num_workers, persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(seed),
    )
