"""The comparison table: mean ± sample std over seeds, the mean alone for a single seed."""
import numpy as np

from daian.training.summary import comparison_rows, format_table


def _result(aucs: dict[int, float]) -> dict:
    return {"per_seed": {s: {"ctr": {"auc": a, "gauc": a - 0.05, "logloss": 0.2}} for s, a in aucs.items()}}


def _cells(table: str, run: str) -> list[str]:
    line = next(l for l in table.splitlines() if l.startswith(f"| {run} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_several_seeds_show_mean_and_sample_std():
    din, daian = {1: 0.66, 2: 0.68, 3: 0.67}, {1: 0.70, 2: 0.73, 3: 0.71}
    rows = comparison_rows({"din": _result(din), "daian": _result(daian)})
    cells = _cells(format_table(rows), "daian")
    vals = list(daian.values())
    assert cells[1] == f"{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f}"
    impr = [((daian[s] - 0.5) / (din[s] - 0.5) - 1) * 100 for s in din]
    assert cells[3] == f"{np.mean(impr):.2f} ± {np.std(impr, ddof=1):.2f}"


def test_one_seed_shows_no_spread():
    rows = comparison_rows({"din": _result({1: 0.66}), "daian": _result({1: 0.71})})
    cells = _cells(format_table(rows), "daian")
    assert cells[1] == "0.7100" and "±" not in "".join(cells)
    assert cells[3] == f"{((0.71 - 0.5) / (0.66 - 0.5) - 1) * 100:.2f}"
