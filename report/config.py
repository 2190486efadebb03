"""The report's settings: one typed dataclass that `tir-report`, scripts and tests fill in."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from intent_labels.labelled import SPLITS

DIVERSITY_MEASURES = ("labels", "profile", "categories")


@dataclass
class ReportConfig:
    """One report over finished training runs (see docs/report.md for what each section shows)."""

    # --- inputs and outputs
    runs: tuple[Path, ...]  # run folders: `train-daian --compare` outputs or single-model runs (seed-S/ or not)
    out: Path  # output folder: report.html, report.md, figures/, report.json
    data: Path | None = None  # label-intents output the runs were trained on; None = the runs' checkpoint config
    dataset: Path | None = None  # dataset folder (items.parquet, images/, truth/); None = the runs' checkpoint config
    sweep: tuple[tuple[int, Path], ...] = ()  # (levels n, run folder) pairs for the AUC/GAUC-against-n figure
    # --- what is compared
    baseline: str = "din"  # run name that RelaImpr is measured against in the comparison table
    intent_model: str = "daian"  # run whose intent_pred is drawn; compared with the baseline by user diversity
    # --- figures
    diversity: str = "labels"  # GAUC-gain groups: labels (train intent entropy), profile (planted), categories
    diversity_buckets: int = 5  # at most this many user groups (quantiles of the diversity; fewer when values repeat)
    ctr_split: str = "train"  # labelled split the CTR-by-page-and-level figure is measured on
    max_page: int = 10  # pages from this one on share the last column of the CTR figure
    min_cell_impressions: int = 30  # CTR cells with fewer impressions are left blank (too noisy to read)
    examples: int = 3  # example test requests drawn with their top-scored targets
    top_k: int = 5  # targets shown per model in an example
    seed: int = 0  # picks the example requests
    dpi: int = 110  # resolution of the PNG figures
    title: str = "Trigger-induced recommendation: model report"  # heading of report.html and report.md
    progress: bool = True  # tqdm progress bars

    def __post_init__(self) -> None:
        self.runs = tuple(Path(r) for r in self.runs)
        self.out = Path(self.out)
        self.data = None if self.data is None else Path(self.data)
        self.dataset = None if self.dataset is None else Path(self.dataset)
        self.sweep = tuple((int(n), Path(p)) for n, p in self.sweep)
        if not self.runs:
            raise ValueError("runs must name at least one run folder")
        if self.diversity not in DIVERSITY_MEASURES:
            raise ValueError(f"diversity must be one of {list(DIVERSITY_MEASURES)}, got {self.diversity!r}")
        if self.ctr_split not in SPLITS:
            raise ValueError(f"ctr_split must be one of {list(SPLITS)}, got {self.ctr_split!r}")
        for name in ("diversity_buckets", "max_page", "top_k", "dpi"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("min_cell_impressions", "examples"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        levels = [n for n, _ in self.sweep]
        if any(n < 2 for n in levels):
            raise ValueError(f"sweep levels must be >= 2, got {levels}")
        if len(set(levels)) != len(levels):
            raise ValueError(f"sweep names a level twice: {levels}")


def parse_sweep(items: list[str] | None) -> tuple[tuple[int, Path], ...]:
    """`["n=4:runs/n4", "n=8:runs/n8"]` -> ((4, Path("runs/n4")), (8, Path("runs/n8")))."""
    out = []
    for item in items or []:
        key, sep, rest = item.partition("=")
        level, colon, path = rest.partition(":")
        if key.strip() != "n" or not sep or not colon or not path.strip():
            raise ValueError(f"--sweep expects n=LEVELS:RUN_FOLDER, got {item!r}")
        try:
            n = int(level)
        except ValueError:
            raise ValueError(f"--sweep {item!r}: levels {level!r} is not an integer") from None
        out.append((n, Path(path.strip())))
    return tuple(out)
