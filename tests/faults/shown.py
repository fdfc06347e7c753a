"""What the user sees of a failure: one line, never a Python traceback."""

from __future__ import annotations


def one_line(error: BaseException, printed: str = "") -> str:
    """The single line the user sees of ``error``; fails on anything more.

    ``printed`` is what the cell wrote (``tests.shell.fails`` with ``capsys``);
    it must hold no traceback either.
    """
    render = getattr(error, "_render_traceback_", None)
    assert render is not None, f"a Python traceback: {type(error).__name__}: {error}"
    shown = render()
    assert len(shown) == 1 and "\n" not in shown[0], shown
    assert "Traceback" not in printed, printed
    return str(shown[0])
