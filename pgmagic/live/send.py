"""``NOTIFY`` from the notebook: ``%pg notify`` and its payload rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pgmagic.errors import OptionError
from pgmagic.live.log import check_channels
from pgmagic.results.cell import Mode, run_cell
from pgmagic.runtime.connect import json_bytes
from pgmagic.runtime.loop import Runtime
from pgmagic.runtime.messages import Message


def payload_text(value: Any) -> str:
    """The text ``pg_notify`` sends for a notebook value.

    Parameters
    ----------
    value : object
        A str is sent as is, None as an empty payload, and anything else as
        JSON (dicts, lists, numbers), encoded as bound json values are:
        datetimes in ISO 8601, ``Decimal`` and big integers with every digit.

    Returns
    -------
    str
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json_bytes(value).decode()
    except TypeError as error:
        raise OptionError(f"cannot send a {type(value).__name__} as a payload: {error}") from None


def send(
    runtime: Runtime,
    channel: str,
    payload: Any = None,
    *,
    on_message: Callable[[Message], None] | None = None,
) -> bool:
    """Send one notification from the ``%%pg`` session (``%pg notify``).

    Inside an open transaction the server delivers it on ``COMMIT``, as with
    ``NOTIFY``.

    Parameters
    ----------
    runtime : Runtime
    channel : str
    payload : object, optional
        See :func:`payload_text`; always bound as a parameter.
    on_message : callable, optional
        Receives notes and server messages.

    Returns
    -------
    bool
        Whether delivery waits for the session's transaction to commit.

    Examples
    --------
    >>> send(runtime, "orders", {"id": 42})  # doctest: +SKIP
    False
    """
    (name,) = check_channels([channel])
    run_cell(
        runtime,
        "SELECT pg_notify($1, $2)",
        {},
        (name, payload_text(payload)),
        mode=Mode.SCALAR,
        quiet=True,
        on_message=on_message,
    )
    return runtime.run(_in_transaction(runtime))


async def _in_transaction(runtime: Runtime) -> bool:
    session = await runtime.session()
    return session.conn is not None and session.conn.is_in_transaction()
