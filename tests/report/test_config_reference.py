"""docs/config.md is generated from the config dataclasses and must match the code."""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(reference) -> str:
    return reference.render()


def test_docs_config_md_is_up_to_date(rendered):
    current = (ROOT / "docs" / "config.md").read_text()
    assert current == rendered, "docs/config.md is out of date: run python scripts/config_reference.py"


def _regex_comments(cls) -> dict[str, str]:
    """Independent reading: a field line `name: type = default  # comment` in the class source."""
    out = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"^\s{4}(\w+)\s*:\s*[^#]+?(?:#\s?(.*))?$", line)
        if match and not line.strip().startswith(("def ", "return", "@")):
            out[match.group(1)] = (match.group(2) or "").strip()
    return out


def test_every_field_is_documented_with_its_comment_and_default(reference, rendered):
    for module, name, _ in reference.CONFIGS:
        cls = getattr(importlib.import_module(module), name)
        section = rendered.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        expected = {}
        for klass in reversed(cls.__mro__[:-1]):  # a field's comment is where it is (re)declared
            expected.update(_regex_comments(klass))
        parent = re.search(r"Extends `(\w+)`", section)
        inherited = set()
        if parent:  # fields the parent's section lists, unless this class redeclares them
            base = next(k for k in cls.__mro__ if k.__name__ == parent.group(1))
            inherited = {f.name for f in dataclasses.fields(base)} - set(vars(cls)["__annotations__"])
        for f in dataclasses.fields(cls):
            if f.name in inherited:
                assert f"| `{f.name}` |" not in section, f"{name}.{f.name} is listed under its parent"
                continue
            rows = [line for line in section.splitlines() if line.startswith(f"| `{f.name}` |")]
            assert len(rows) == 1, f"{name}.{f.name}: {len(rows)} rows"
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", rows[0])[1:-1]]
            assert cells[3].replace("\\|", "|") == expected[f.name], f"{name}.{f.name}"
            if f.default is not dataclasses.MISSING and not isinstance(f.default, Path):
                assert cells[2] == f"`{f.default!r}`".replace("|", "\\|"), f"{name}.{f.name}"
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                assert cells[2] == "required"


def test_section_comments_become_headings(reference):
    from daian.training.config import TrainConfig

    comments = reference.field_comments(TrainConfig)
    assert comments["data"][1] == "inputs and outputs"
    assert comments["batch_size"][1] is None
    assert comments["seeds"][1].startswith("optimisation")
