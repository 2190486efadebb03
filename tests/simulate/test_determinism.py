"""Same preset + seed -> byte-identical folder; another seed -> another world."""
from __future__ import annotations

import hashlib

from simulate import simulate_world


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tiny_world, tmp_path):
    made = tiny_world.json("world.json")  # the shared world's preset and seed
    again = simulate_world(made["preset"], tmp_path / "again", seed=made["config"]["seed"],
                           show_progress_bar=False)
    first, second = _digest(tiny_world.path), _digest(again)
    assert len(first) > 500 and first == second


def test_row_group_size_changes_layout_not_rows(tmp_path):
    # Row groups are fixed-size whatever the blocks produce; different row-group sizes change only layout.
    small = {"n_users": 60, "n_items": 200, "n_top_categories": 4, "write_images": False}
    a = simulate_world("tiny", tmp_path / "a", seed=1, overrides=small, show_progress_bar=False)
    b = simulate_world("tiny", tmp_path / "b", seed=1, overrides={**small, "row_group_rows": 500},
                       show_progress_bar=False)
    import pyarrow.parquet as pq

    for name in ("behaviors.parquet", "impressions.parquet", "truth/requests.parquet"):
        assert pq.read_table(a / name).equals(pq.read_table(b / name))
    meta = pq.ParquetFile(b / "impressions.parquet").metadata
    assert meta.num_row_groups > 1 and meta.row_group(0).num_rows == 500


def test_other_seed_differs(tiny_world, tmp_path):
    other = simulate_world("tiny", tmp_path / "other", seed=8, overrides={"write_images": False},
                           show_progress_bar=False)
    assert (other / "impressions.parquet").read_bytes() != (tiny_world.path / "impressions.parquet").read_bytes()
