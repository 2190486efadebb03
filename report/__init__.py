"""The report over finished runs: comparison and ablation tables, the DAIAN paper's figures 5-7,
the data's CTR by page and similarity level, and example requests, as self-contained HTML and as
Markdown with PNG figures. Entry point: `build_report(ReportConfig(...))` or the `tir-report` command.
"""
from report.config import ReportConfig

__all__ = ["ReportConfig", "build_report"]


def build_report(config: ReportConfig):
    """See `report.build.build_report` (imported lazily: matplotlib loads only when used)."""
    from report.build import build_report as _build

    return _build(config)
