"""The data contract: every rule fails with the file, the column, the count and the first rows."""
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.contract import (ContractError, iter_validated_batches, profile_columns, read_table,
                                validate_dataset, validate_table)


def _items():
    return pa.table({
        "item_id": pa.array([10, 11, 12], pa.int64()),
        "title": pa.array(["red mug", "blue mug", None], pa.string()),
        "image": pa.array(["images/10.png", None, "images/12.png"], pa.string()),
        "category_id": pa.array([1, 1, 2], pa.int64()),
        "top_category_id": pa.array([100, 100, 100], pa.int64()),
        "brand_id": pa.array([5, 6, 5], pa.int64()),
        "price": pa.array([9.5, 12.0, 3.0], pa.float64()),
    })


def _users():
    return pa.table({"user_id": pa.array([1, 2], pa.int64()),
                     "gender": pa.array([0, 1], pa.int64()),
                     "age_level": pa.array([3, 4], pa.int64()),
                     "city_id": pa.array([3, 4], pa.int64())})


def _behaviors():
    return pa.table({"user_id": pa.array([1, 1, 2], pa.int64()),
                     "item_id": pa.array([10, 11, 12], pa.int64()),
                     "ts": pa.array([1_700_000_000, 1_700_000_100, 1_700_000_200], pa.int64()),
                     "action": pa.array(["click", "cart", "buy"])})


def _impressions(n=6):
    return pa.table({"request_id": pa.array(np.repeat([7, 8], n // 2), pa.int64()),
                     "user_id": pa.array(np.repeat([1, 2], n // 2), pa.int64()),
                     "ts": pa.array(np.full(n, 1_700_001_000), pa.int64()),
                     "trigger_item_id": pa.array(np.full(n, 10), pa.int64()),
                     "page": pa.array(np.ones(n), pa.int32()),
                     "position": pa.array(np.tile(np.arange(n // 2), 2), pa.int32()),
                     "item_id": pa.array(np.resize([10, 11, 12], n), pa.int64()),
                     "clicked": pa.array(np.zeros(n), pa.int8())})


def _set(table, column, values, type_=None):
    idx = table.column_names.index(column)
    type_ = type_ or table.schema.field(column).type
    return table.set_column(idx, column, pa.array(values, type_))


def test_valid_tables_pass_unchanged():
    for name, table in [("items", _items()), ("users", _users()), ("behaviors", _behaviors()),
                        ("impressions", _impressions())]:
        assert validate_table(table, name) is table


def test_profile_columns_are_every_column_but_user_id_and_must_be_int64_codes():
    assert profile_columns(_users().schema) == ["gender", "age_level", "city_id"]
    # Before: an int32 or string profile column passed and training dropped it (profile_fields: []).
    for bad in (pa.array([3, 4], pa.int32()), pa.array(["3", "4"])):
        with pytest.raises(ContractError, match=r"users.parquet: profile column 'city_id' has type"):
            validate_table(_set(_users(), "city_id", bad.to_pylist(), bad.type), "users")
    with pytest.raises(ContractError, match=r"column 'city_id': 1 row\(s\) are null.*\[1\]"):
        validate_table(_set(_users(), "city_id", [3, None]), "users")


def test_missing_column_is_named():
    with pytest.raises(ContractError, match=r"items.parquet: missing required column\(s\) \['price'\]"):
        validate_table(_items().drop_columns(["price"]), "items")


def test_wrong_type_is_an_error_not_a_cast():
    bad = _set(_impressions(), "page", [1] * 6, pa.int64())
    with pytest.raises(ContractError, match=r"column 'page' has type int64, the contract requires int32"):
        validate_table(bad, "impressions")


def test_rule_violation_names_count_rows_and_values():
    bad = _set(_impressions(), "page", [1, 0, 1, -2, 1, 1])
    with pytest.raises(ContractError) as err:
        validate_table(bad, "impressions", source="logs/impressions.parquet", row_offset=100)
    msg = str(err.value)
    assert msg.startswith("logs/impressions.parquet: column 'page': 2 row(s)")
    assert "first row(s) [101, 103]" in msg and "(values [0, -2])" in msg


def test_nulls_in_required_column():
    bad = _set(_behaviors(), "item_id", [10, None, None])
    with pytest.raises(ContractError, match=r"column 'item_id': 2 row\(s\) are null; first row\(s\) \[1, 2\]"):
        validate_table(bad, "behaviors")


def test_unknown_action_and_clicked_values():
    with pytest.raises(ContractError, match=r"'action'.*1 row\(s\).*\(values \['view'\]\)"):
        validate_table(_set(_behaviors(), "action", ["click", "view", "buy"]), "behaviors")
    with pytest.raises(ContractError, match=r"'clicked'.*clicked must be 0 or 1.*\(values \[2\]\)"):
        validate_table(_set(_impressions(), "clicked", [0, 0, 2, 0, 0, 0]), "impressions")


def test_millisecond_timestamps_are_refused():
    ms = [1_700_000_000_000, 1_700_000_100, 1_700_000_200]
    with pytest.raises(ContractError, match=r"'ts'.*unix seconds.*first row\(s\) \[0\]"):
        validate_table(_set(_behaviors(), "ts", ms), "behaviors")


def test_duplicate_ids_are_listed():
    bad = _set(_items(), "item_id", [10, 11, 10])
    with pytest.raises(ContractError, match=r"'item_id': 1 row\(s\) repeat an id.*first row\(s\) \[2\] \(values \[10\]\)"):
        validate_table(bad, "items")


def test_item_without_title_and_picture():
    bad = _set(_items(), "image", ["images/10.png", None, None])
    with pytest.raises(ContractError, match=r"neither a title nor a picture; first row\(s\) \[2\] \(values \[12\]\)"):
        validate_table(bad, "items")


def test_price_must_be_finite_and_non_negative():
    with pytest.raises(ContractError, match=r"'price'.*2 row\(s\)"):
        validate_table(_set(_items(), "price", [1.0, float("nan"), -1.0]), "items")


def _write_dataset(folder, **tables):
    folder.mkdir(parents=True, exist_ok=True)
    base = {"items": _items(), "users": _users(), "behaviors": _behaviors(),
            "impressions": _impressions()}
    base.update(tables)
    for name, table in base.items():
        pq.write_table(table, folder / f"{name}.parquet")
    return folder


def test_dataset_references_and_counts(tmp_path):
    counts = validate_dataset(_write_dataset(tmp_path / "ok"))
    assert counts == {"items": 3, "users": 2, "behaviors": 3, "impressions": 6}
    bad = _set(_impressions(), "trigger_item_id", [10, 10, 99, 10, 98, 10])
    folder = _write_dataset(tmp_path / "bad", impressions=bad)
    with pytest.raises(ContractError, match=re.escape(
            "column 'trigger_item_id': 2 row(s) refer to ids absent from items.parquet; "
            "first row(s) [2, 4] (values [99, 98])")):
        validate_dataset(folder)


def test_streamed_batches_report_absolute_rows(tmp_path):
    table = _impressions(6000)
    pages = np.ones(6000, np.int32)
    pages[4321] = 0
    path = tmp_path / "impressions.parquet"
    pq.write_table(_set(table, "page", pages), path, row_group_size=1000)
    with pytest.raises(ContractError, match=r"first row\(s\) \[4321\]"):
        for _ in iter_validated_batches(path, "impressions", batch_size=1000):
            pass


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "items.parquet").write_text("not parquet")
    with pytest.raises(ContractError, match="not a readable Parquet file"):
        read_table(tmp_path / "items.parquet", "items")
    with pytest.raises(FileNotFoundError, match="expected the users table"):
        read_table(tmp_path / "users.parquet", "users")


def test_an_empty_picture_path_is_an_error_not_a_silent_no_picture():
    items = _items()
    images = items.column("image").to_pylist()
    images[1] = "  "
    with pytest.raises(ContractError, match=r"column 'image': 1 row\(s\) break the rule: image must be null"):
        validate_table(_set(items, "image", images), "items")
