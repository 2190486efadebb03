"""Large splits become folders of parts with bounded row groups; the rows are those of one file."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from tests.intent_labels.conftest import SYNTH_SPLIT


def test_parts_and_row_groups_hold_the_same_rows(tmp_path, synth_world, synth_store, synth_labels):
    from intent_labels import label_intents

    out = label_intents(synth_world, synth_store, tmp_path / "labels", batch_rows=50, row_group_rows=64,
                        part_rows=300, show_progress_bar=False, **SYNTH_SPLIT)
    manifest = json.loads((out / "manifest.json").read_text())
    for split in ("train", "test"):
        whole = pq.read_table(synth_labels / f"{split}.parquet")
        path = out / f"{split}.parquet"
        parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
        n = whole.num_rows
        assert len(parts) == -(-n // 300)  # ceil: full parts of 300, then the rest
        assert manifest["counts"][split]["path"] == (f"{split}.parquet/" if len(parts) > 1 else f"{split}.parquet")
        for p in parts:
            meta = pq.ParquetFile(p).metadata
            assert meta.num_rows <= 300
            assert all(meta.row_group(i).num_rows <= 64 for i in range(meta.num_row_groups))
        assert pq.read_table(path).equals(whole)
    assert not list(out.glob("*.partial"))
