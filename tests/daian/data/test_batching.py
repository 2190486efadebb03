"""The epoch sampler and the index-batch loader."""
from __future__ import annotations

import torch

from daian.data import EpochBatchSampler, make_loader


def test_sampler_permutes_per_epoch_and_shards():
    s = EpochBatchSampler(103, 10, shuffle=True, seed=7)
    s.set_epoch(0)
    e0 = torch.cat(list(s))
    s.set_epoch(1)
    e1 = torch.cat(list(s))
    assert sorted(e0.tolist()) == list(range(103)) == sorted(e1.tolist())
    assert not torch.equal(e0, e1)
    s.set_epoch(0)
    assert torch.equal(torch.cat(list(s)), e0)  # depends on (seed, epoch) only
    assert len(s) == 11
    shards = [EpochBatchSampler(103, 10, shuffle=True, seed=7, rank=r, world_size=3) for r in range(3)]
    batches = [list(sh) for sh in shards]
    assert len(batches[0]) == len(shards[0]) == 11  # last global batch of 3 rows still splits
    for step in range(11):
        assert torch.equal(torch.cat([b[step] for b in batches]), list(EpochBatchSampler(103, 10, shuffle=True,
                                                                                       seed=7))[step])


def test_loader_yields_each_row_once(bundle):
    sampler = EpochBatchSampler(len(bundle.train), 256, shuffle=True, seed=1)
    seen = []
    for features, targets in make_loader(bundle.train, sampler):
        assert features["hist"].shape[0] == targets["label"].shape[0] <= 256
        seen.append(targets["label"].shape[0])
    assert sum(seen) == len(bundle.train)
    # a worker process assembles the very same batches
    direct = [t["label"] for _, t in make_loader(bundle.train, sampler)]
    worker = [t["label"] for _, t in make_loader(bundle.train, sampler, num_workers=1)]
    assert len(direct) == len(worker) and all(torch.equal(a, b) for a, b in zip(direct, worker))
