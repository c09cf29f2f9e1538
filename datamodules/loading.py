"""DataLoaders whose position can be saved mid-epoch and whose order depends only on seed + epoch."""

import torch
from torch.utils.data import Dataset, DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, collate_fn, num_workers: int,
                seed: int) -> StatefulDataLoader:
    """A resumable loader: Lightning saves its position in every checkpoint.

    Shuffling uses a DistributedSampler of one replica: its order is a function of (seed, epoch),
    Lightning calls its `set_epoch`, and under DDP Lightning swaps in the same sampler across
    ranks, so a run resumed mid-epoch, or on more GPUs, sees the data in a reproducible order.
    The loader's own generator only seeds worker processes, so iterating never draws from the
    global RNG that dropout and masking use.
    """
    sampler = None
    if shuffle:
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)
    return StatefulDataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
        num_workers=num_workers, persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(seed),
    )
