"""The CLI pattern every command follows: one line and exit 2 for user errors, tracebacks for bugs."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from common.cli import MissingDependency, default_of, make_parser, run
from common.contract import ContractError


@dataclass
class Settings:
    levels: int = 6
    names: list = field(default_factory=lambda: ["a"])
    needed: str = field(default=None)


def parser():
    p = make_parser("tool", "A tool.")
    p.add_argument("--levels", type=int, default=default_of(Settings, "levels"), help="(default %(default)s)")
    return p


@pytest.mark.parametrize("error, exit_code, text", [
    (ValueError("levels must be >= 2"), 2, "tool: error: levels must be >= 2"),
    (ContractError("items.parquet: column 'price' has type int32"), 2, "tool: error: items.parquet: column 'price'"),
    (FileNotFoundError(2, "No such file or directory", "/x/y.parquet"), 2, "tool: error: [Errno 2] No such file or directory: '/x/y.parquet'"),
    (MissingDependency("engine='ray' needs Ray"), 2, "tool: error: engine='ray' needs Ray"),
    (KeyboardInterrupt(), 130, "tool: interrupted"),
])
def test_user_errors_are_one_line(capsys, error, exit_code, text):
    def body(args):
        raise error

    assert run(parser(), [], body) == exit_code
    err = capsys.readouterr().err
    assert err.startswith(text) and err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_the_traceback_and_bugs_keep_theirs():
    def user_error(args):
        raise ValueError("bad value\nsecond line")

    with pytest.raises(ValueError, match="bad value"):
        run(parser(), ["--debug"], user_error)

    def bug(args):
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        run(parser(), [], bug)


def test_bad_flag_is_one_line_and_defaults_come_from_the_dataclass(capsys):
    with pytest.raises(SystemExit) as exc:
        run(parser(), ["--levels", "many"], lambda args: 0)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--levels: invalid int value: 'many'" in err
    assert run(parser(), [], lambda args: args.levels) == 6
    assert default_of(Settings, "names") == ["a"] and default_of(Settings, "needed") is None
    with pytest.raises(ValueError, match="no field 'bogus'"):
        default_of(Settings, "bogus")


def test_ctrl_c_says_in_one_line_what_was_kept_and_how_to_resume(capsys):
    def body(args):
        raise KeyboardInterrupt

    code = run(parser(), [], body, interrupted=lambda args: f"kept epoch 1 of run\nrerun with --resume (levels {args.levels})")
    err = capsys.readouterr().err
    assert code == 130 and err == "tool: interrupted; kept epoch 1 of run rerun with --resume (levels 6)\n"


def test_ctrl_c_while_the_parser_is_built_is_one_line_too(capsys):
    def slow_imports():
        raise KeyboardInterrupt  # e.g. while torch imports

    assert run(slow_imports, [], lambda args: 0) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and err.endswith(": interrupted while starting; nothing was written\n")


def test_a_parser_factory_is_called_once_and_parses(capsys):
    built = []

    def factory():
        built.append(1)
        return parser()

    assert run(factory, ["--levels", "3"], lambda args: args.levels - 3) == 0 and built == [1]


def test_check_output_refuses_a_non_empty_output_unless_overwrite(tmp_path):
    from common.cli import check_output

    check_output(tmp_path / "absent", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", overwrite=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("1")
    (tmp_path / "file").write_text("1")
    for path in (tmp_path / "full", tmp_path / "file"):
        with pytest.raises(FileExistsError, match=rf"{path} \(--out\) exists and is not empty; pass --overwrite"):
            check_output(path, overwrite=False)
        check_output(path, overwrite=True)
    assert (tmp_path / "full" / "x").read_text() == "1"  # the check never deletes
