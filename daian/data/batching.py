"""Batches of a `TIRDataset`: the epoch sampler and an index-batch loader.

`EpochBatchSampler` draws a fresh permutation per epoch from a `torch.Generator` seeded with
(seed, epoch), so a resumed run sees exactly the batches an uninterrupted one would, and shards
every global batch across processes under `accelerate launch`. `make_loader` hands whole batches
(`dataset[index_tensor]`) out, with no per-sample work.
"""
from __future__ import annotations

import torch

from daian.data.dataset import TIRDataset


class EpochBatchSampler(torch.utils.data.Sampler):
    """Yields index tensors: a per-epoch permutation cut into global batches, this process's share.

    The permutation comes from a `torch.Generator` seeded with (seed, epoch) only, so it does not
    depend on what ran before: resuming at an epoch boundary reproduces the batches exactly. Under
    several processes each global batch is split contiguously; a final global batch smaller than the
    process count is dropped when training (every process must take part in each step).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """The next iteration draws epoch `epoch`'s order and skips its first `start_step` batches
        (a run resumed mid-epoch)."""
        self.epoch, self.start_step = epoch, start_step

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        gen = torch.Generator()
        gen.manual_seed(int(self.seed) * 1_000_003 + int(self.epoch))
        return torch.randperm(self.n, generator=gen)

    def __iter__(self):
        order = self._order()
        for start in range(self.start_step * self.batch_size, self.n, self.batch_size):
            chunk = order[start:start + self.batch_size]
            if self.world_size > 1:
                if chunk.numel() < self.world_size:
                    continue
                chunk = torch.tensor_split(chunk, self.world_size)[self.rank]
            yield chunk

    def __len__(self) -> int:
        """Batches of a whole epoch (whatever start_step says)."""
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and (self.world_size == 1 or rest >= self.world_size) else 0)


def _as_is(batch):
    return batch


def make_loader(dataset: TIRDataset, sampler: EpochBatchSampler, *, num_workers: int = 0,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader whose every item is a whole batch (`dataset[index_tensor]`), no per-sample work."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=sampler, collate_fn=_as_is,
                                       num_workers=num_workers, pin_memory=pin_memory,
                                       persistent_workers=False)


class EpochLoader:
    """The in-memory path's loader: `set_epoch(epoch, start_step)`, `len()` (batches of a whole
    epoch), iteration; the streaming path's `StreamingLoader` has the same three."""

    def __init__(self, dataset: TIRDataset, sampler: EpochBatchSampler, *, num_workers: int = 0,
                 pin_memory: bool = False) -> None:
        self.sampler = sampler
        self.loader = make_loader(dataset, sampler, num_workers=num_workers, pin_memory=pin_memory)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.sampler.set_epoch(epoch, start_step)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return iter(self.loader)
