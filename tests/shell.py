"""Running cells in a real IPython shell from tests: the result, or the failure and what it printed."""

from __future__ import annotations

from typing import Any


def run(ip: Any, cell: str) -> Any:
    """Run a cell; return its value, or raise what it raised."""
    result = ip.run_cell(cell)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def fails(ip: Any, cell: str, capsys: Any = None) -> tuple[BaseException, str]:
    """Run a cell that must fail; return the error and what the cell printed.

    With ``capsys``, the printed text is what the cell alone wrote (stdout and
    stderr); without it, it is empty.
    """
    if capsys is not None:
        capsys.readouterr()
    result = ip.run_cell(cell)
    error = result.error_in_exec or result.error_before_exec
    assert error is not None, f"expected {cell!r} to fail"
    if capsys is None:
        return error, ""
    captured = capsys.readouterr()
    return error, captured.out + captured.err
