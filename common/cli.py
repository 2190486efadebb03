"""The one pattern of every command-line tool: `build_parser()` and `main(argv)`.

    def build_parser() -> argparse.ArgumentParser:
        p = make_parser("label-intents", "what it does")
        p.add_argument("--levels", type=int, default=default_of(LabelConfig, "levels"), help="...")
        return p

    def main(argv=None) -> int:
        return run(build_parser(), argv, _run)   # _run(args) -> exit code (0 when it returns None)

A user error (a contract violation, a missing or unreadable file, a bad setting, a bad flag value)
exits 2 with one line, `PROG: error: ...`, naming the file, column, row or flag; `--debug` shows
the traceback instead. Ctrl-C exits 130 with one line, `PROG: interrupted; ...` saying what was kept
and how to go on (the command's `interrupted(args)` message). Anything else is a bug and keeps its
traceback.

`run` takes the parser or a function building it, so that a Ctrl-C while heavy modules import
(torch) also ends in one line; `overwrite_help` and `check_output` are the one rule for outputs that
exist: refused unless `--overwrite`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Callable



class MissingDependency(ImportError):
    """An optional package the asked-for feature needs is not installed (say which, and how)."""


# ValueError covers the contract's ContractError, the configs' validation and pyarrow's ArrowInvalid;
# OSError covers missing, unreadable and existing-output files.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, MissingDependency)
INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT


class Parser(argparse.ArgumentParser):
    """argparse with a `--debug` flag and one-line errors (no usage block) for bad flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true",
                          help="on an error, show the full traceback instead of one line")

    def error(self, message: str) -> None:  # argparse's hook for a bad flag or value
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def make_parser(prog: str, description: str, epilog: str | None = None) -> Parser:
    return Parser(prog=prog, description=description, epilog=epilog)


def default_of(config: type, name: str) -> Any:
    """The default of dataclass `config`'s field `name`, so a flag's default is not restated."""
    for f in dataclasses.fields(config):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{config.__name__}.{name} has no default")
    raise ValueError(f"{config.__name__} has no field {name!r}")


def one_line(exc: BaseException) -> str:
    """The error's message on one line (KeyError's repr quotes dropped, newlines folded)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return " ".join(text.split()) or type(exc).__name__


def run(parser: argparse.ArgumentParser | Callable[[], argparse.ArgumentParser],
        argv: list[str] | None, body: Callable[[argparse.Namespace], int | None],
        interrupted: Callable[[argparse.Namespace], str] | None = None) -> int:
    """Parse `argv`, call `body(args)`, and turn user errors into exit code 2 with one line.

    `interrupted(args)` says, after a Ctrl-C, what was kept and how to resume (one line)."""
    if not isinstance(parser, argparse.ArgumentParser):
        try:
            parser = parser()
        except KeyboardInterrupt:
            prog = os.path.basename(sys.argv[0]) or "command"
            print(f"{prog}: interrupted while starting; nothing was written", file=sys.stderr)
            return INTERRUPTED
    args = parser.parse_args(argv)
    try:
        code = body(args)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        said = interrupted(args) if interrupted is not None else ""
        print(f"{parser.prog}: interrupted" + (f"; {one_line(Exception(said))}" if said else ""),
              file=sys.stderr)
        return INTERRUPTED
    except USER_ERRORS as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{parser.prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0 if code is None else int(code)


def fail(parser: argparse.ArgumentParser, message: str) -> None:
    """A flag combination that cannot work: one line, exit 2 (argparse's own bad-flag path)."""
    parser.error(message)


def overwrite_help(what: str = "the output") -> str:
    return f"replace {what} if it exists (refused otherwise, so no earlier result is lost)"


def check_output(path, overwrite: bool, flag: str = "--out") -> None:
    """Refuse an existing, non-empty output (a file, or a folder with anything in it) unless
    `overwrite`; the error names the path and the flags."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    if overwrite:
        return
    raise FileExistsError(f"{path} ({flag}) exists and is not empty; pass --overwrite to replace it, "
                          "or choose another path")
