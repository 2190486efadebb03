"""Fixtures shared by the whole suite."""
import os

import pytest

from common.contract import FILES


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The suite's models and tensors are tiny: one intra-op thread runs them fastest and avoids
    OpenMP oversubscription on a small, shared machine (an order of magnitude on 2 cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# The tiny world, built once per test run and shared by every suite that needs it
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """The simulator's tiny world (seed 0, pictures included): a dataset folder."""
    from simulate import simulate_world

    return simulate_world("tiny", tmp_path_factory.mktemp("tiny") / "world", seed=0, show_progress_bar=False)


@pytest.fixture(scope="session")
def tiny_text_store(tmp_path_factory, tiny_world):
    """The tiny world's items embedded by the offline MiniLM text backend: a store folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub from tests
    from embedder import build_store

    return build_store(tiny_world / FILES["items"], tmp_path_factory.mktemp("tiny_text_store") / "store",
                       show_progress_bar=False)


@pytest.fixture(scope="session")
def tiny_labels(tmp_path_factory, tiny_world, tiny_text_store):
    """label-intents over the tiny world and its MiniLM store: a labelled folder. 4,096-row
    batches (the default holds the whole world) so that requests span record batches."""
    from intent_labels import label_intents

    return label_intents(tiny_world, tiny_text_store, tmp_path_factory.mktemp("tiny_labels") / "labels",
                         batch_rows=4096, show_progress_bar=False)


# ---------------------------------------------------------------------------------------------
# Checks shared by the CLI tests (common.cli's pattern)
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def user_error(capsys):
    """`user_error(prog)`: what the CLI just wrote to stderr is one line `PROG: error: ...` and no
    traceback; returns that line."""
    def check(prog: str) -> str:
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: ") and "Traceback" not in err, err
        return lines[0]

    return check


@pytest.fixture
def every_flag_has_help():
    """`every_flag_has_help(parser)`: each flag documents itself and --help exits 0."""
    def check(parser) -> None:
        for action in parser._actions:
            assert action.help, action.dest
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["--help"])
        assert exc.value.code == 0

    return check
