"""Reading what the report needs besides the runs: the labelled splits, the items' titles, the truth.

Everything is read with pyarrow and handed on as numpy arrays; only the columns a section uses
are read, so the report stays cheap on large logs. Test predictions are matched to labelled test
rows by (request_id, item_id), which the labelling guarantees to be unique.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from common.contract import FILES, TRUTH_DIR, TRUTH_USERS, lookup_user_types, read_table, read_truth_users
from common import pictures
from daian.run_folder import list_matrix
from intent_labels.labelled import MANIFEST, LabelledFolder


def column(table: pa.Table, name: str) -> np.ndarray:
    """A non-list column as numpy (nulls are an error naming the column)."""
    col = table.column(name)
    if col.null_count:
        raise ValueError(f"column '{name}' holds {col.null_count} null(s)")
    return col.to_numpy()


def intent_matrix(table: pa.Table, what: str) -> np.ndarray:
    return list_matrix(table.column("intent"), f"{what}: column 'intent'")


# ----------------------------------------------------------------------------- matching rows


class RowIndex:
    """Look-up of reference rows by (request_id, item_id), built once and queried per prediction file."""

    def __init__(self, req: np.ndarray, item: np.ndarray, what: str) -> None:
        self.req_values = np.unique(req)
        self.item_values = np.unique(item)
        key = self._codes(req, self.req_values)[0] * self.item_values.size + self._codes(item, self.item_values)[0]
        self.order = np.argsort(key, kind="stable")
        self.sorted_key = key[self.order]
        dup = np.flatnonzero(self.sorted_key[1:] == self.sorted_key[:-1])
        if dup.size:
            row = self.order[dup[0]]
            raise ValueError(f"{what}: the rows repeat (request_id {req[row]}, item_id {item[row]})")
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @staticmethod
    def _codes(values: np.ndarray, uniq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.minimum(np.searchsorted(uniq, values), max(uniq.size - 1, 0))
        found = uniq[pos] == values if uniq.size else np.zeros(np.shape(values), bool)
        return pos.astype(np.int64), found

    def find(self, req: np.ndarray, item: np.ndarray, what: str) -> np.ndarray:
        """Reference row of each (request_id, item_id); ValueError naming `what` when one is absent."""
        if self._last is not None and np.array_equal(req, self._last[0]) and np.array_equal(item, self._last[1]):
            return self._last[2]  # the runs of a comparison list the test rows in the same order
        r, fr = self._codes(req, self.req_values)
        i, fi = self._codes(item, self.item_values)
        key = r * self.item_values.size + i
        pos = np.minimum(np.searchsorted(self.sorted_key, key), max(self.sorted_key.size - 1, 0))
        found = fr & fi & (self.sorted_key[pos] == key if self.sorted_key.size else False)
        if not np.all(found):
            bad = np.flatnonzero(~found)
            raise ValueError(f"{what}: {bad.size} row(s) have no matching labelled test row; first at row "
                             f"{int(bad[0])} (request_id {req[bad[0]]}, item_id {item[bad[0]]}); were the runs "
                             "trained on this labelled folder?")
        idx = self.order[pos]
        self._last = (req, item, idx)
        return idx


def align(req: np.ndarray, item: np.ndarray, ref_req: np.ndarray, ref_item: np.ndarray,
          what: str) -> np.ndarray:
    """Index into the reference rows of each (request_id, item_id) row; ValueError when one is absent."""
    return RowIndex(ref_req, ref_item, what).find(req, item, what)


# ----------------------------------------------------------------------------- dataset folder


@dataclass
class ItemTitles:
    """The items' titles, picture paths and leaf categories (items.parquet), by item id."""

    root: Path  # the dataset folder; picture paths are relative to it
    item_id: np.ndarray  # sorted
    title: list[str | None]
    image: list[str | None]
    category: np.ndarray

    @classmethod
    def read(cls, dataset: Path) -> "ItemTitles":
        """items.parquet of `dataset`, checked against the data contract."""
        table = read_table(Path(dataset) / FILES["items"], "items",
                           columns=["item_id", "title", "image", "category_id"])
        ids = table.column("item_id").to_numpy()
        order = np.argsort(ids, kind="stable")

        def strings(name: str) -> list:
            values = table.column(name).to_pylist()
            return [values[i] for i in order]

        return cls(Path(dataset), ids[order], strings("title"), strings("image"),
                   table.column("category_id").to_numpy()[order])

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id; -1 where items.parquet lacks it."""
        ids = np.asarray(ids)
        pos = np.minimum(np.searchsorted(self.item_id, ids), max(self.item_id.size - 1, 0))
        found = self.item_id[pos] == ids if self.item_id.size else np.zeros(ids.shape, bool)
        return np.where(found, pos, -1)

    def picture_path(self, item_id: int) -> Path | None:
        """The item's picture file, confined to the dataset folder (`common.pictures.picture_path`:
        PictureError naming the item and the path for a URL or a path outside it); None when the
        item has no `image` value. The file need not exist."""
        row = int(self.rows(np.array([item_id]))[0])
        if row < 0 or not self.image[row]:
            return None
        return pictures.picture_path(self.root, self.image[row], item_id)

    def image_value(self, item_id: int) -> str | None:
        row = int(self.rows(np.array([item_id]))[0])
        return None if row < 0 else self.image[row]

    def pictures(self, ids: list[int]) -> tuple[dict[int, np.ndarray], dict[str, list]]:
        """The pictures of the items `ids` (those the report shows, and only those), and what is
        wrong where one is missing.

        Every path is resolved by `common.pictures.picture_path` first, so a path outside the
        dataset folder is refused (PictureError naming the item and the path) before any file is
        read; each file is then opened by `common.pictures.open_picture` (pixel and size limits).
        Returns ({item: (H, W, 3) uint8}, {"no value": [item, ...], "missing": [(item, value), ...],
        "unreadable": [(item, reason), ...]})."""
        paths = {i: self.picture_path(i) for i in ids}
        out, problems = {}, {"no value": [], "missing": [], "unreadable": []}
        for i, path in paths.items():
            if path is None:
                problems["no value"].append(i)
            elif not path.is_file():
                problems["missing"].append((i, self.image_value(i)))
            else:
                try:
                    out[i] = np.asarray(pictures.open_picture(path))
                except pictures.PictureError as exc:
                    problems["unreadable"].append((i, str(exc)))
        return out, problems

    def title_of(self, item_id: int) -> str:
        row = int(self.rows(np.array([item_id]))[0])
        if row < 0:
            return f"item {item_id} (not in {FILES['items']})"
        return self.title[row] or f"item {item_id}"


@dataclass
class Truth:
    """truth/users.parquet of a simulated world: planted user type and intent profile."""

    user_id: np.ndarray  # sorted
    user_type: np.ndarray | None  # (U,) object
    profile: np.ndarray | None  # (U, n_planted) float64

    @classmethod
    def read(cls, dataset: Path | None) -> "Truth | None":
        """The dataset's planted users, or None when it carries none (not a simulated world)."""
        table = None if dataset is None else read_truth_users(dataset)
        if table is None:
            return None
        ids = table.column("user_id").to_numpy()
        order = np.argsort(ids, kind="stable")
        types = (np.asarray(table.column("user_type").to_pylist(), dtype=object)[order]
                 if "user_type" in table.column_names else None)
        what = f"{Path(dataset) / TRUTH_DIR / TRUTH_USERS}: column 'intent_profile'"
        profile = (list_matrix(table.column("intent_profile"), what)[order]
                   if "intent_profile" in table.column_names else None)
        return cls(ids[order], types, profile)

    def rows(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        pos = np.minimum(np.searchsorted(self.user_id, users), max(self.user_id.size - 1, 0))
        found = self.user_id[pos] == users if self.user_id.size else np.zeros(users.shape, bool)
        return np.where(found, pos, -1)

    def types_of(self, users: np.ndarray) -> np.ndarray | None:
        """Planted type per user (None where unknown), or None without a user_type column."""
        if self.user_type is None:
            return None
        return lookup_user_types((self.user_id, self.user_type), users)


def resolve_inputs(data: Path | None, dataset: Path | None, recorded: dict) -> tuple[LabelledFolder, Path]:
    """The labelled folder (opened, so validated) and the dataset folder: the given ones, else those
    the runs recorded in training, else (for the dataset) the one the labelled manifest names."""
    if data is None:
        if not recorded.get("data"):
            raise ValueError("the runs record no labelled data folder (checkpoint/config.json); pass --data")
        data = Path(recorded["data"])
    if not Path(data).is_dir():
        raise FileNotFoundError(f"{data}: no such folder (pass --data)")
    labelled = LabelledFolder.open(data)
    if dataset is None:
        dataset = Path(recorded["dataset"]) if recorded.get("dataset") else labelled.dataset
        if dataset is None:
            raise ValueError(f"neither the runs nor {labelled.path / MANIFEST} name the dataset folder; "
                             "pass --dataset")
    if not Path(dataset).is_dir():
        raise FileNotFoundError(f"{dataset}: no such folder (pass --dataset)")
    return labelled, Path(dataset)
