"""The panel's Schema view, kernel side: ``schema`` and ``columns`` requests on the panel comm.

:class:`~pgmagic.frontend.feed.PanelBridge` hands these requests here; each
is answered with one message carrying the request's ``id`` (the front end
matches replies to requests by it), or ``{"type": "error", "id", "message"}``
in one line.  The queries (:mod:`pgmagic.catalog.tree`) run on a pool
connection through the runtime, so a cell busy on the session connection
does not hold them up, and the handler may run on any thread.
"""

from __future__ import annotations

from typing import Any

from pgmagic.catalog import tree
from pgmagic.errors import DATABASE_ERRORS, PgMagicError, lines
from pgmagic.runtime.loop import Runtime

__all__ = ["REQUESTS", "answer"]

#: The request types :func:`answer` serves.
REQUESTS = frozenset({"schema", "columns"})


def answer(runtime: Runtime, data: dict[str, Any]) -> dict[str, Any]:
    """The reply to one ``schema`` or ``columns`` request.

    Parameters
    ----------
    runtime : Runtime
    data : dict
        ``{"type": "schema", "id": int}`` or
        ``{"type": "columns", "id": int, "schema": str, "relation": str}``.

    Returns
    -------
    dict
        The reply to send on the comm; never raises for a bad request or a
        database error.

    Examples
    --------
    >>> answer(runtime, {"type": "schema", "id": 1})["database"]  # doctest: +SKIP
    'postgres'
    """
    ident = data.get("id")
    if isinstance(ident, bool) or not isinstance(ident, int):
        return {"type": "error", "id": None, "message": "request field 'id' must be an integer"}
    try:
        if data.get("type") == "schema":
            found = runtime.run(tree.tree(runtime))
            return {
                "type": "schema",
                "id": ident,
                "database": found.database,
                "user": found.user,
                "schemas": found.schemas,
            }
        schema, relation = data.get("schema"), data.get("relation")
        if not isinstance(schema, str) or not isinstance(relation, str):
            return _error(ident, "columns needs string fields 'schema' and 'relation'")
        columns = runtime.run(tree.columns(runtime, schema, relation))
        return {"type": "columns", "id": ident, "columns": columns}
    except TimeoutError:
        return _error(ident, f"the catalog did not answer within {tree.TIMEOUT:g} s")
    except (PgMagicError, *DATABASE_ERRORS) as error:
        # lines() renders a server error as psql would, over several lines:
        # the panel shows its first (ERROR: ...) only.
        return _error(ident, lines(error)[0])


def _error(ident: int, message: str) -> dict[str, Any]:
    return {"type": "error", "id": ident, "message": message}
