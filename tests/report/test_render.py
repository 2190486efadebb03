"""report.html and report.md: embedded figures decode, Markdown links resolve, a browser loads them all."""
from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

SECTIONS = ["Data and runs", "Model comparison", "Ablations", "Intent fit (DAIAN Figure 5)",
            "GAUC by user intent diversity (DAIAN Figure 6)",
            "AUC and GAUC against the number of levels n (DAIAN Figure 7)",
            "CTR by page and similarity level", "Example requests"]
FIGURES = ["comparison", "intent_fit", "diversity_gain", "levels_sweep", "ctr_page_level", "example_1", "example_2"]


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.srcs.append(attrs.get("src", ""))
        if tag in ("link", "script") and (attrs.get("href") or attrs.get("src")):
            self.external.append(attrs.get("href") or attrs.get("src"))


def _images(html: str) -> _Images:
    parser = _Images()
    parser.feed(html)
    return parser


def test_every_img_is_an_embedded_decodable_png(report):
    parser = _images(report["html"])
    assert len(parser.srcs) == len(FIGURES)
    assert parser.external == []  # self-contained: no linked stylesheet or script
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "PNG"
            img.load()
            assert img.width > 200 and img.height > 100


def test_markdown_links_every_figure_file(report):
    out = report["out"]
    md = report["paths"]["markdown"].read_text()
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert links == [f"figures/{name}.png" for name in FIGURES]
    for link in links:
        with Image.open(out / link) as img:
            assert img.format == "PNG"
    for title in SECTIONS:
        assert f"## {title}" in md
        assert f">{title}</h2>" in report["html"]


def test_html_and_markdown_show_the_same_figures(report):
    md_files = sorted(p.name for p in (report["out"] / "figures").iterdir())
    html_pngs = [base64.b64decode(s.split(",", 1)[1]) for s in _images(report["html"]).srcs]
    assert sorted(f"{n}.png" for n in FIGURES) == md_files
    assert html_pngs == [(report["out"] / "figures" / f"{n}.png").read_bytes() for n in FIGURES]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser_title(html_path: Path, profile: Path) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
           f"{html_path.resolve().as_uri()}#figures-check"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    match = re.search(r"<title>([^<]*)</title>", done.stdout)
    assert match, f"no <title> in chromium's DOM dump; stderr: {done.stderr[-2000:]}"
    return match.group(1)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium); "
                                              "the browser check of report.html is skipped")
def test_chromium_loads_every_figure(report, tmp_path):
    n = len(FIGURES)
    assert _browser_title(report["paths"]["html"], tmp_path / "profile") == f"figures-ok:{n}/{n}"
    # the check can fail: a copy with one corrupted picture reports one figure missing
    html = report["html"]
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = html[:start] + "AAAA" + html[start + 4:]
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    assert _browser_title(path, tmp_path / "profile2") == f"figures-ok:{n - 1}/{n}"
