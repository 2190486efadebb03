"""Generate docs/config.md, the configuration reference, from the config dataclasses themselves.

For every field: its name, its type as written in the source, its default (the dataclass's real
value, `default_factory` called), and the one-line comment that follows it in the source (read
with `ast` and `tokenize`, so the reference cannot drift from the code). Comment lines standing
alone between fields (`# --- optimisation`) become sub-headings.

    python scripts/config_reference.py           # rewrite docs/config.md
    python scripts/config_reference.py --check   # exit 1 when docs/config.md is out of date
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import io
import sys
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "config.md"

# (module, class, the command that fills it)
CONFIGS = [
    ("simulate.config", "WorldConfig",
     "`simulate-tir --preset NAME --set FIELD=VALUE` (a preset fills the fields first; see docs/simulator.md)"),
    ("embedder.encoder", "EmbedderConfig", "`embed-items` flags (`--backend`, `--model`, `--pooling`, ...)"),
    ("embedder.store_builder", "BuildConfig", "`embed-items` flags (`--items`, `--out`, `--batch-size`, ...)"),
    ("intent_labels.config", "LabelConfig", "`label-intents` flags (`--levels`, `--train-days`, ...)"),
    ("daian.training.config", "TrainConfig", "`train-daian` flags, or `train-daian --set FIELD=VALUE` for any field"),
    ("daian.models.din", "DINConfig", "`train-daian --model din --set model.FIELD=VALUE`"),
    ("daian.models.dei2n", "DEI2NConfig", "`train-daian --model dei2n --set model.FIELD=VALUE`"),
    ("daian.models.daian", "DAIANConfig", "`train-daian --model daian --set model.FIELD=VALUE`"),
    ("report.config", "ReportConfig", "`tir-report` flags (`--sweep n=K:RUN`, `--diversity`, ...)"),
]


@dataclass
class FieldDoc:
    name: str
    type: str
    default: str
    comment: str
    section: str | None = None  # the stand-alone comment heading the group this field opens


@dataclass
class ClassDoc:
    name: str
    module: str
    summary: str
    how: str
    fields: list[FieldDoc] = field(default_factory=list)


def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """Line -> comment text, and the lines holding nothing but a comment."""
    comments: dict[int, str] = {}
    alone: set[int] = set()
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            line = tok.start[0]
            comments.setdefault(line, tok.string.lstrip("#").strip())
            if not lines[line - 1][: tok.start[1]].strip():
                alone.add(line)
    return comments, alone


def _heading(text: str) -> str:
    return text.strip().strip("-").strip()


def field_comments(cls: type) -> dict[str, tuple[str, str | None]]:
    """Field name -> (its trailing comment, the stand-alone comment heading it, if any)."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments, alone = _comments(source)
    tree = ast.parse(source)
    body = tree.body[0].body
    out: dict[str, tuple[str, str | None]] = {}
    previous_end = 1
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            trailing = next((comments[ln] for ln in range(node.lineno, node.end_lineno + 1)
                             if ln in comments and ln not in alone), "")
            above = [comments[ln] for ln in range(previous_end + 1, node.lineno) if ln in alone]
            heading = " ".join(_heading(c) for c in above if _heading(c)) or None
            out[node.target.id] = (trailing, heading)
        previous_end = getattr(node, "end_lineno", previous_end)
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return f"{type(value).__name__}()"
    if isinstance(value, Path):
        return f"`{value}`"
    return f"`{value!r}`"


def _type(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def documented_parent(cls: type) -> type | None:
    """The nearest base class that has its own section in the reference, if any."""
    names = {c[1] for c in CONFIGS}
    return next((b for b in cls.__mro__[1:] if b.__name__ in names), None)


def document(module: str, name: str, how: str) -> ClassDoc:
    """A config class's own fields (those it declares or redeclares with its own default); a class
    extending another config names it, whose page lists the rest."""
    cls = getattr(importlib.import_module(module), name)
    comments = {}
    summary = (inspect.getdoc(cls) or "").splitlines()[0]
    parent = documented_parent(cls)
    if parent is not None:
        summary += f" Extends `{parent.__name__}`: its fields apply too."
    own: set[str] = set()
    for klass in cls.__mro__:  # the class and its undocumented bases, up to a documented one
        if klass is parent or not dataclasses.is_dataclass(klass):
            break
        own |= set(vars(klass).get("__annotations__", {}))
        comments = {**field_comments(klass), **comments}
    doc = ClassDoc(name, module, summary, how)
    for f in dataclasses.fields(cls):
        if f.name not in own:
            continue
        comment, section = comments.get(f.name, ("", None))
        doc.fields.append(FieldDoc(f.name, _type(f), _default(f), comment, section))
    return doc


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(configs=CONFIGS) -> str:
    docs = [document(*c) for c in configs]
    lines = ["# Configuration reference", "",
             "Generated from the configuration dataclasses by `scripts/config_reference.py`; do not edit by hand "
             "(a test checks that this page matches the code). Each field's description is the comment beside "
             "it in the source.", ""]
    lines += [f"- [`{d.name}`](#{d.name.lower()}) (`{d.module}`)" for d in docs] + [""]
    for d in docs:
        lines += [f"## {d.name}", "", f"{d.summary} Module `{d.module}`; set with {d.how}.", ""]
        header = ["| field | type | default | description |", "|---|---|---|---|"]
        in_table = False
        for f in d.fields:
            if f.section:
                lines += ([""] if in_table else []) + [f"**{f.section}**", ""]
                in_table = False
            if not in_table:
                lines += header
                in_table = True
            lines.append(f"| `{f.name}` | `{_cell(f.type)}` | {_cell(f.default)} | {_cell(f.comment)} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="file to write (default docs/config.md)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    for module, name, _ in CONFIGS:
        blank = [f.name for f in document(module, name, "").fields if not f.comment]
        if blank:
            print(f"note: {name} fields without a comment in the source: {blank}", file=sys.stderr)
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date; run python scripts/config_reference.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
