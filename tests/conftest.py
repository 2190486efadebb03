"""Fixtures shared by the whole suite."""
import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The suite's models and tensors are tiny: one intra-op thread runs them fastest and avoids
    OpenMP oversubscription on a small, shared machine (an order of magnitude on 2 cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
