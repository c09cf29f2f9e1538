"""DataLoaders whose position can be saved mid-epoch and whose order depends only on seed + epoch."""

import torch
from lightning import Trainer
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, collate_fn, num_workers: int,
                seed: int, trainer: Trainer | None = None) -> StatefulDataLoader:
    """A resumable loader: Lightning saves its position in every checkpoint.

    Shuffling uses a DistributedSampler over the trainer's processes (one without DDP): the order
    is a function of (seed, epoch) only, Lightning calls its `set_epoch`, and each rank takes
    every world_size-th sample of the same permutation, so a run resumed mid-epoch, or spread
    over more GPUs, sees the data in a reproducible order. The loader's own generator only seeds
    worker processes, so iterating never draws from the global RNG that dropout and masking use.

    Evaluation loaders (no shuffle) on several processes give each text to exactly one of them
    (`UnrepeatedDistributedSampler`): Lightning's default would repeat texts to even the shards
    out, and count them twice in the metrics.
    """
    sampler = None
    replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
    if shuffle:
        sampler = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=True, seed=seed)
    elif replicas > 1:
        sampler = UnrepeatedDistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=False)
    return StatefulDataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
        num_workers=num_workers, persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(seed),
    )
