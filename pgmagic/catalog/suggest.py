"""Completions for a cursor context from a catalog snapshot: the ranking rules.

- after FROM/JOIN: relations on the search_path, then schemas, then
  set-returning functions and ``WITH`` queries;
- after ``name.``: the columns of an alias, table or ``WITH`` query, else the
  relations and functions of a schema;
- after SELECT/WHERE/BY/SET ...: the columns of the tables in scope, then
  functions, then keywords;
- after ``JOIN ... ON``: conditions from foreign keys between the tables in
  scope, then columns;
- after ``::`` or ``CAST(... AS``: data types, the database's own first;
- keywords last everywhere else.

Pure: the caller loads what :func:`needed` names first.  No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pgmagic.catalog.snapshot import RelationInfo, Snapshot
from pgmagic.sql.scope import Clause, CursorContext, Relation

__all__ = ["KEYWORDS", "Suggestion", "needed", "suggest"]

KEYWORDS = (
    "SELECT", "FROM", "WHERE", "JOIN", "LEFT JOIN", "INNER JOIN", "ON", "USING", "GROUP BY",
    "ORDER BY", "HAVING", "LIMIT", "OFFSET", "AS", "AND", "OR", "NOT", "NULL", "IS", "IN",
    "BETWEEN", "LIKE", "ILIKE", "DISTINCT", "CASE", "WHEN", "THEN", "ELSE", "END", "WITH",
    "UNION", "EXCEPT", "INTERSECT", "INSERT INTO", "VALUES", "UPDATE", "SET", "DELETE FROM",
    "RETURNING", "CREATE TABLE", "ALTER TABLE", "DROP TABLE", "BEGIN", "COMMIT", "ROLLBACK",
    "EXPLAIN", "ANALYZE", "ASC", "DESC", "NULLS FIRST", "NULLS LAST", "TRUE", "FALSE",
)  # fmt: skip

_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}


@dataclass(frozen=True)
class Suggestion:
    """One completion: the text to insert, what it is, and a detail (a type)."""

    text: str
    kind: str
    detail: str = ""


def _quote(name: str) -> str:
    """A name as it must be typed: bare when the server would fold it to itself."""
    plain = name.isidentifier() and name == name.lower() and name.isascii()
    return name if plain else '"' + name.replace('"', '""') + '"'


def _matches(name: str, prefix: str) -> bool:
    return name.lower().startswith(prefix.lower().lstrip('"'))


def _in_scope(context: CursorContext, snapshot: Snapshot) -> list[tuple[Relation, RelationInfo]]:
    found = []
    for relation in context.relations:
        if relation.schema is None and relation.name in context.ctes:
            continue
        info = snapshot.resolve(relation.schema, relation.name)
        if info is not None:
            found.append((relation, info))
    return found


def _qualified_target(context: CursorContext, snapshot: Snapshot) -> RelationInfo | None:
    qualifier = context.qualifier
    for relation in context.relations:
        if relation.alias == qualifier or (relation.alias is None and relation.name == qualifier):
            return snapshot.resolve(relation.schema, relation.name)
    return snapshot.resolve(None, qualifier) if qualifier is not None else None


def needed(context: CursorContext, snapshot: Snapshot) -> list[int]:
    """The relations whose columns the suggestions need (load them first).

    Parameters
    ----------
    context : CursorContext
    snapshot : Snapshot

    Returns
    -------
    list of int
        Relation OIDs.
    """
    if context.clause is Clause.QUALIFIED:
        target = _qualified_target(context, snapshot)
        return [target.oid] if target is not None else []
    if context.clause in (Clause.COLUMN, Clause.JOIN_CONDITION):
        return [info.oid for _, info in _in_scope(context, snapshot)]
    return []


def suggest(context: CursorContext, snapshot: Snapshot) -> list[Suggestion]:
    """The completions for a context, best first.

    Parameters
    ----------
    context : CursorContext
    snapshot : Snapshot
        With the columns of :func:`needed` loaded.

    Returns
    -------
    list of Suggestion
    """
    prefix = context.prefix
    out: list[Suggestion] = []
    if context.clause is Clause.QUALIFIED:
        out += _qualified(context, snapshot)
    elif context.clause is Clause.RELATION:
        out += _relations(snapshot, prefix)
        out += [Suggestion(_quote(name), "with query") for name in context.ctes]
        out += [Suggestion(_quote(s), "schema") for s in snapshot.schemas if s != "pg_catalog"]
        out += [
            Suggestion(_quote(name) + "(", "function")
            for schema, name, returns_set in snapshot.functions
            if returns_set and schema in snapshot.search_path
        ]
    elif context.clause is Clause.TYPE:
        # The database's own types (enums, domains) before the built-in ones.
        out += [
            Suggestion(name, "type", schema)
            for schema, name in sorted(snapshot.types, key=lambda t: (t[0] == "pg_catalog", t[1]))
        ]
    elif context.clause in (Clause.COLUMN, Clause.JOIN_CONDITION):
        if context.clause is Clause.JOIN_CONDITION:
            out += _join_conditions(context, snapshot)
        out += _columns_in_scope(context, snapshot)
        if prefix:  # a bare list would bury the columns under a thousand functions
            out += _functions(snapshot)
        out += [Suggestion(k, "keyword") for k in KEYWORDS]
    else:
        out += [Suggestion(k, "keyword") for k in KEYWORDS]
    return _unique(s for s in out if _matches(s.text, prefix))


def _unique(suggestions: Iterable[Suggestion]) -> list[Suggestion]:
    seen: set[str] = set()
    kept = []
    for suggestion in suggestions:
        if suggestion.text not in seen:
            seen.add(suggestion.text)
            kept.append(suggestion)
    return kept


def _relations(snapshot: Snapshot, prefix: str) -> list[Suggestion]:
    # The search_path's first: a name there is typed bare.  Filtered before
    # anything is built: a catalog may hold 20,000 tables.
    rank = {schema: i for i, schema in enumerate(snapshot.search_path) if schema != "pg_catalog"}
    ranked = [
        (rank[info.schema], info)
        for info in snapshot.relations
        if info.schema in rank and _matches(info.name, prefix)
    ]
    ranked.sort(key=lambda item: (item[0], item[1].name))
    return [Suggestion(_quote(info.name), _KINDS[info.kind], info.schema) for _, info in ranked]


def _qualified(context: CursorContext, snapshot: Snapshot) -> list[Suggestion]:
    qualifier = context.qualifier
    if qualifier in context.ctes:
        return [Suggestion(_quote(c), "column") for c in context.ctes[qualifier]]
    target = _qualified_target(context, snapshot)
    if target is not None:
        return [
            Suggestion(_quote(c.name), "column", c.type)
            for c in snapshot.columns.get(target.oid, [])
        ]
    if qualifier in snapshot.schemas:
        return [
            Suggestion(_quote(info.name), _KINDS[info.kind], qualifier)
            for info in snapshot.relations
            if info.schema == qualifier
        ] + [
            Suggestion(_quote(name) + "(", "function", qualifier)
            for schema, name, _ in snapshot.functions
            if schema == qualifier
        ]
    return []


def _columns_in_scope(context: CursorContext, snapshot: Snapshot) -> list[Suggestion]:
    out = []
    for relation, info in _in_scope(context, snapshot):
        where = relation.alias or relation.name
        out += [
            Suggestion(_quote(c.name), "column", f"{c.type} · {where}")
            for c in snapshot.columns.get(info.oid, [])
        ]
    for relation in context.relations:
        if relation.schema is None and relation.name in context.ctes:
            out += [Suggestion(_quote(c), "column") for c in context.ctes[relation.name]]
    return out


def _join_conditions(context: CursorContext, snapshot: Snapshot) -> list[Suggestion]:
    scope = _in_scope(context, snapshot)
    if len(scope) < 2:
        return []
    # The table just joined, against each table before it.
    joined, joined_info = scope[-1]
    out = []
    for other, other_info in scope[:-1]:
        for key in snapshot.foreign_keys.get(joined_info.oid, []):
            ends = {key.source, key.target}
            if ends != {joined_info.oid, other_info.oid} and not (
                key.source == key.target == joined_info.oid
            ):
                continue
            near, far = (joined, other) if key.source == joined_info.oid else (other, joined)
            left = near.alias or near.name
            right = far.alias or far.name
            text = " AND ".join(
                f"{_quote(left)}.{_quote(a)} = {_quote(right)}.{_quote(b)}"
                for a, b in zip(key.columns, key.referenced, strict=True)
            )
            out.append(Suggestion(text, "join", "foreign key"))
    return out


def _functions(snapshot: Snapshot) -> list[Suggestion]:
    names = sorted(
        {name for schema, name, _ in snapshot.functions if schema in snapshot.search_path}
    )
    return [Suggestion(_quote(name) + "(", "function") for name in names]
