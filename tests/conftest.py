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


# ---------------------------------------------------------------------------------------------
# The hand-made dataset: a user's own logs, written from docs/data.md alone (not the simulator)
# ---------------------------------------------------------------------------------------------

HANDMADE_START = 1_772_323_200  # 2026-03-01 00:00:00 UTC, the first request day
_WORDS = {0: ["cotton", "linen", "denim", "wool"], 1: ["steel", "ceramic", "glass", "oak"],
          2: ["leather", "canvas", "suede", "nylon"]}
_LEAVES = {0: ["shirt", "dress", "jacket", "skirt"], 1: ["pan", "mug", "bowl", "lamp"],
           2: ["boot", "bag", "belt", "sneaker"]}
_TOPS = {0: "clothing", 1: "home", 2: "shoes and bags"}


def write_handmade(folder, *, n_items: int = 300, n_users: int = 100, days: int = 5,
                   requests_per_user_day: int = 2, page_size: int = 8, pictures: bool = True,
                   seed: int = 0):
    """Write a small dataset folder the way a user would from docs/data.md: items (titles, PNG
    pictures under images/), users (gender, age_level), 14 days of behaviours before the first
    request, `days` UTC days of trigger-induced requests. A target of the trigger's leaf category
    is clicked far more often (p ~ 0.3 against ~0.04), so a model that trains finds the signal."""
    from pathlib import Path

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    item_ids = np.arange(1000, 1000 + n_items, dtype=np.int64)
    top = rng.integers(0, 3, n_items)
    leaf = rng.integers(0, 4, n_items)
    cat = top * 4 + leaf
    titles = [f"{rng.choice(_WORDS[t])} {_LEAVES[t][l]} no. {i}" for i, t, l in zip(item_ids, top, leaf)]
    images = None
    if pictures:
        from PIL import Image

        (folder / "images").mkdir(exist_ok=True)
        images = []
        for i, c in zip(item_ids, cat):
            colour = tuple(int(v) for v in (40 + 17 * c, 200 - 13 * c, 90 + (c * 37) % 150))
            Image.new("RGB", (24, 24), colour).save(folder / "images" / f"{i}.png")
            images.append(f"images/{i}.png")
    pq.write_table(pa.table({
        "item_id": item_ids, "title": pa.array(titles, pa.string()),
        "image": pa.array(images if images is not None else [None] * n_items, pa.string()),
        "category_id": pa.array(cat, pa.int64()), "top_category_id": pa.array(top, pa.int64()),
        "brand_id": pa.array(rng.integers(0, 12, n_items), pa.int64()),
        "price": pa.array(np.round(rng.uniform(1, 200, n_items), 2), pa.float64()),
        "category_name": pa.array([_LEAVES[t][l] for t, l in zip(top, leaf)]),
        "top_category_name": pa.array([_TOPS[t] for t in top])}), folder / FILES["items"])
    user_ids = np.arange(1, n_users + 1, dtype=np.int64)
    pq.write_table(pa.table({"user_id": user_ids,
                             "gender": pa.array(rng.integers(0, 2, n_users), pa.int64()),
                             "age_level": pa.array(rng.integers(0, 6, n_users), pa.int64())}),
                   folder / FILES["users"])
    favourite = rng.integers(0, 12, n_users)
    beh = {"user_id": [], "item_id": [], "ts": [], "action": []}
    for u, fav in zip(user_ids, favourite):
        n = int(rng.integers(15, 40))
        own = item_ids[cat == fav]
        picks = np.where(rng.random(n) < 0.6, rng.choice(own, n), rng.choice(item_ids, n))
        beh["user_id"] += [int(u)] * n
        beh["item_id"] += picks.tolist()
        beh["ts"] += (HANDMADE_START - 14 * 86_400 + rng.integers(0, (14 + days) * 86_400, n)).tolist()
        beh["action"] += rng.choice(["click", "click", "click", "cart", "buy"], n).tolist()
    imp = {k: [] for k in ("request_id", "user_id", "ts", "trigger_item_id", "page", "position",
                           "item_id", "clicked")}
    rid = 500_000
    for day in range(days):
        for u in user_ids:
            for _ in range(requests_per_user_day):
                rid += 1
                ts = HANDMADE_START + day * 86_400 + int(rng.integers(0, 86_400))
                trigger = int(rng.choice(item_ids))
                same = item_ids[(cat == cat[item_ids == trigger][0]) & (item_ids != trigger)]
                k_same = min(page_size // 2, same.size)
                targets = np.r_[rng.choice(same, k_same, replace=False),
                                rng.choice(item_ids[item_ids != trigger], page_size - k_same, replace=False)]
                targets = list(dict.fromkeys(targets.tolist()))
                for pos, t in enumerate(targets):
                    p = 0.3 if cat[item_ids == t][0] == cat[item_ids == trigger][0] else 0.04
                    for k, v in (("request_id", rid), ("user_id", int(u)), ("ts", ts),
                                 ("trigger_item_id", trigger), ("page", 1), ("position", pos + 1),
                                 ("item_id", int(t)), ("clicked", int(rng.random() < p))):
                        imp[k].append(v)
    pq.write_table(pa.table({k: pa.array(v, pa.int64()) for k, v in beh.items() if k != "action"}
                            | {"action": pa.array(beh["action"], pa.string())}), folder / FILES["behaviors"])
    types = {"page": pa.int32(), "position": pa.int32(), "clicked": pa.int8()}
    pq.write_table(pa.table({k: pa.array(v, types.get(k, pa.int64())) for k, v in imp.items()}),
                   folder / FILES["impressions"])
    return folder


@pytest.fixture(scope="session")
def handmade(tmp_path_factory):
    """The hand-made dataset (300 items, 100 users, 5 days of requests, pictures): a folder. Tests
    that break it copy it first (`shutil.copytree`)."""
    return write_handmade(tmp_path_factory.mktemp("handmade") / "logs")


@pytest.fixture(scope="session")
def make_handmade():
    """`write_handmade` itself, for tests that need a variant (fewer items, no pictures, more days)."""
    return write_handmade
