"""Shared test helpers."""
import pytest

from bench.cli import main


def exit_code(argv: list[str]) -> int:
    """``main``'s status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.fixture
def usage_error(capsys):
    """``usage_error(argv, needle)``: the command exits 2 with one line on stderr holding
    ``needle`` (the contract for every bad command line)."""
    def check(argv: list[str], needle: str) -> str:
        code = exit_code(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2 and needle in err and len(err.splitlines()) == 1, err
        return err
    return check
