"""Length buckets: batches of texts of similar length, padded to a few fixed widths."""

import math

import torch
from torch.utils.data import Dataset, DistributedSampler


class BucketSampler(DistributedSampler):
    """Yields indices so that each run of `batch_size` holds texts from one length bucket.

    Texts fall into buckets of `width` tokens (1-64, 65-128, ...); with the collator padding to
    a multiple of `width`, a batch takes one of only `max_length / width` shapes, which GPU
    kernels and `torch.compile` handle far better than a new length every step, and far less of
    each batch is padding than with random batches. Every epoch the buckets are refilled from a
    fresh permutation (seed, epoch) and the batches are shuffled across buckets; leftovers of
    each bucket are pooled, sorted by length and batched together. Each process takes every
    `num_replicas`-th batch, and all processes get the same number of batches.
    """

    def __init__(self, dataset: Dataset, lengths: list[int], batch_size: int, width: int,
                 num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.lengths, self.batch_size, self.width = lengths, batch_size, width
        # one process keeps the short last batch; several keep an equal number of full ones
        self.batches_per_replica = (math.ceil(len(lengths) / batch_size) if num_replicas == 1
                                    else len(lengths) // batch_size // num_replicas)

    def batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        buckets: dict[int, list[int]] = {}
        for i in torch.randperm(len(self.lengths), generator=generator).tolist():
            buckets.setdefault(math.ceil(self.lengths[i] / self.width), []).append(i)
        full, leftovers = [], []
        for members in buckets.values():
            cut = len(members) - len(members) % self.batch_size
            full += [members[j:j + self.batch_size] for j in range(0, cut, self.batch_size)]
            leftovers += members[cut:]
        leftovers.sort(key=self.lengths.__getitem__)
        pooled = [leftovers[j:j + self.batch_size] for j in range(0, len(leftovers), self.batch_size)]
        partial = [pooled.pop()] if pooled and len(pooled[-1]) < self.batch_size else []
        batches = full + pooled
        order = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[k] for k in order] + partial  # a short batch only ever comes last

    def __iter__(self):
        mine = self.batches()[self.rank::self.num_replicas][:self.batches_per_replica]
        return iter([i for batch in mine for i in batch])

    def __len__(self) -> int:
        if self.num_replicas == 1:
            return len(self.lengths)
        return self.batches_per_replica * self.batch_size
