"""Generate pgmagic's type OIDs and C column kinds, for Python and C, from one list.

The lists below are the only place these numbers are written by hand.  The
script turns them into two files, checked in and never edited:

- ``pgmagic/_oids.py``: ``BOOL = 16``, ``INT4_ARRAY = 1007``, ... (the
  typname upper-cased; read them qualified, ``oids.INT4``), ``FIRST_USER_OID``,
  and one ``enum.IntEnum`` per C enumeration (``CopyKind``, ``CopyLayout``,
  ``EncodeKind``);
- ``pgmagic/_c/oids.h``: ``#define PGM_OID_BOOL 16``, ... and the same
  enumerations as C enums whose names are the class's initials and the
  member (``CK_BOOL``, ``CL_PANDAS``, ``EK_FIXED1``), plus ``<initials>_MAX``
  (one past the last kind) where the C code bounds-checks a kind.

Built-in type OIDs never change across PostgreSQL versions, so the list is
the source of truth; ``--dsn`` checks it against a server's ``pg_type``
first and fails on any disagreement.

Usage::

    python tools/update_oids.py              # rewrite both files from the lists
    python tools/update_oids.py --dsn URL    # the same, after checking the OIDs on a server
    python tools/update_oids.py --check      # exit 1 when the files on disk are stale

After a change to a kind, rebuild the C extensions (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
PYTHON_FILE: Final = Path("pgmagic/_oids.py")
C_FILE: Final = Path("pgmagic/_c/oids.h")


@dataclass(frozen=True)
class Type:
    """A built-in type pgmagic decodes or encodes, as ``pg_type`` has it."""

    typname: str
    oid: int
    array_oid: int = 0  # pg_type.typarray; 0: the type has no array type


# Ordered by OID; names are pg_type.typname ("char" is the one-byte type, bpchar is char(n)).
TYPES: Final = (
    Type("bool", 16, 1000),
    Type("bytea", 17, 1001),
    Type("char", 18, 1002),
    Type("name", 19, 1003),
    Type("int8", 20, 1016),
    Type("int2", 21, 1005),
    Type("int4", 23, 1007),
    Type("text", 25, 1009),
    Type("oid", 26, 1028),
    Type("json", 114, 199),
    Type("float4", 700, 1021),
    Type("float8", 701, 1022),
    Type("bpchar", 1042, 1014),
    Type("varchar", 1043, 1015),
    Type("date", 1082, 1182),
    Type("time", 1083, 1183),
    Type("timestamp", 1114, 1115),
    Type("timestamptz", 1184, 1185),
    Type("interval", 1186, 1187),
    Type("timetz", 1266, 1270),
    Type("numeric", 1700, 1231),
    Type("void", 2278),
    Type("uuid", 2950, 2951),
    Type("jsonb", 3802, 3807),
)

# FirstNormalObjectId in PostgreSQL's access/transam.h: objects created by
# users (types included) get OIDs from here on, built-in ones stay below.
FIRST_USER_OID: Final = 16384


@dataclass(frozen=True)
class Member:
    """One value of an enumeration shared by Python and C."""

    name: str
    number: int
    note: str = ""  # a comment after the value
    group: str = ""  # a comment line before the value


@dataclass(frozen=True)
class Enumeration:
    """Numbers a C module and its Python side must agree on."""

    name: str  # the Python class; its initials prefix the C names
    doc: str
    source: str  # the C file under pgmagic/_c that uses the numbers
    members: tuple[Member, ...]
    with_max: bool = False  # C gets <initials>_MAX, one past the last member

    @property
    def c_prefix(self) -> str:
        """``CopyKind`` -> ``CK_``."""
        return "".join(c for c in self.name if c.isupper()) + "_"


ENUMERATIONS: Final = (
    Enumeration(
        "CopyKind",
        "Column kinds of the binary COPY parser",
        "pgcopy.c",
        (
            Member("BOOL", 1),
            Member("INT2", 2),
            Member("INT4", 3),
            Member("INT8", 4),
            Member("OID", 5),
            Member("FLOAT4", 6),
            Member("FLOAT8", 7),
            Member("TEXT", 8),
            Member("NUMERIC", 9),
            Member("NUMERIC_FLOAT", 10),
            Member("TIMESTAMP", 11),
            Member("TIMESTAMPTZ", 12),
            Member("DATE", 13),
            Member("INTERVAL", 14),
            Member("TIME", 15),
            Member("TIMETZ", 16),
            Member("UUID", 17),
            Member("BYTEA", 18),
            Member("JSON", 19),
            Member("JSONB", 20),
            Member("ARRAY", 21),
            Member("VOID", 22, "export layouts only: always NULL"),
        ),
        with_max=True,
    ),
    Enumeration(
        "CopyLayout",
        "Buffer layouts of the binary COPY parser",
        "pgcopy.c",
        (
            Member("PANDAS", 0, "numpy buffers and object arrays, for DataFrames"),
            Member("ARROW", 1, "Arrow array buffers, for exports"),
            Member("JSONL", 2, "one JSON object per row, for exports"),
        ),
    ),
    Enumeration(
        "EncodeKind",
        "Column kinds of the binary COPY encoder",
        "pgencode.c",
        (
            Member(
                "FIXED1",
                1,
                "bool",
                group="numpy values (native byte order) + optional uint8 mask, 1 = NULL",
            ),
            Member("FIXED2", 2, "int2"),
            Member("FIXED4", 3, "int4, float4, date (days since 2000-01-01)"),
            Member("FIXED8", 4, "int8, float8, timestamp[tz] (us since 2000-01-01)"),
            Member("INTERVAL", 5, "int64 microseconds -> (us, days, months = 0)"),
            Member("NUMERIC_I64", 6, "int64 -> numeric"),
            Member("NUMERIC_U64", 7, "uint64 -> numeric"),
            Member(
                "ARROW_TEXT",
                8,
                "text, varchar, bpchar, json",
                group="Arrow string / large_string buffers",
            ),
            Member("ARROW_JSONB", 9, "jsonb: version byte 1, then the text"),
            Member("BOOL", 10, group="object ndarrays, by the target column's type"),
            Member("INT2", 11),
            Member("INT4", 12),
            Member("INT8", 13),
            Member("FLOAT8", 14),
            Member("NUMERIC", 15),
            Member("TEXT", 16),
            Member("BYTEA", 17),
            Member("UUID", 18),
            Member("DATE", 19),
            Member("TIME", 20),
            Member("JSON", 21),
            Member("JSONB", 22),
            Member("ARRAY", 23),
        ),
        with_max=True,
    ),
)

_GENERATED: Final = "Generated by tools/update_oids.py; do not edit."


def oid_names(types: Iterable[Type] = TYPES) -> list[tuple[str, str, int]]:
    """Every OID the files define: Python name, ``pg_type.typname``, OID.

    Parameters
    ----------
    types : iterable of Type

    Returns
    -------
    list of (str, str, int)
        Scalar types first, then array types, each in the order given.

    Examples
    --------
    >>> oid_names([Type("int4", 23, 1007)])
    [('INT4', 'int4', 23), ('INT4_ARRAY', '_int4', 1007)]
    """
    types = list(types)
    scalars = [(t.typname.upper(), t.typname, t.oid) for t in types]
    arrays = [(f"{t.typname.upper()}_ARRAY", f"_{t.typname}", t.array_oid) for t in types]
    return scalars + [array for array in arrays if array[2]]


def _check_lists() -> None:
    # Mistakes in the lists above would otherwise reach both files silently.
    oids = [oid for _, _, oid in oid_names()]
    if len(set(oids)) != len(oids) or max(oids) >= FIRST_USER_OID:
        raise SystemExit("update_oids: the type list repeats an OID or holds a user OID")
    for enumeration in ENUMERATIONS:
        # The C code checks kinds by range (FIRST <= kind < MAX, the numpy
        # kinds of EncodeKind before the others): numbers run on without gaps.
        numbers = [m.number for m in enumeration.members]
        names = [m.name for m in enumeration.members]
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            raise SystemExit(f"update_oids: {enumeration.name} is not numbered consecutively")
        if len(set(names)) != len(names):
            raise SystemExit(f"update_oids: {enumeration.name} repeats a name")


def python_source() -> str:
    """The text of ``pgmagic/_oids.py``.

    Returns
    -------
    str
    """
    out = [
        '"""Built-in type OIDs and the numbers pgmagic\'s C modules share with Python.',
        "",
        f"{_GENERATED}  The C side is",
        "``pgmagic/_c/oids.h``, generated from the same lists.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import enum",
        "from typing import Final",
        "",
        "# pg_type.oid of built-in types: fixed in the catalog, the same on every server.",
        "# Named after pg_type.typname; read them qualified (oids.INT4, oids.INT4_ARRAY).",
    ]
    names = oid_names()
    out += [f"{name}: Final = {oid}" for name, typname, oid in names if typname[0] != "_"]
    out += ["", "# Their array types (pg_type.typarray)."]
    out += [f"{name}: Final = {oid}" for name, typname, oid in names if typname[0] == "_"]
    out += [
        "",
        "# OIDs of user-created objects start here (FirstNormalObjectId); built-in ones are below.",
        f"FIRST_USER_OID: Final = {FIRST_USER_OID}",
    ]
    for enumeration in ENUMERATIONS:
        out += ["", "", f"class {enumeration.name}(enum.IntEnum):"]
        out += [f'    """{enumeration.doc}, ``pgmagic/_c/{enumeration.source}``."""', ""]
        for member in enumeration.members:
            if member.group:
                out.append(f"    # {member.group}")
            note = f"  # {member.note}" if member.note else ""
            out.append(f"    {member.name} = {member.number}{note}")
    return "\n".join(out) + "\n"


def c_source() -> str:
    """The text of ``pgmagic/_c/oids.h``.

    Returns
    -------
    str
    """
    out = [
        "/*",
        " * Built-in type OIDs and the numbers pgmagic's C modules share with Python.",
        " *",
        f" * {_GENERATED}  The Python side is",
        " * pgmagic/_oids.py, generated from the same lists: CopyKind.BOOL there is",
        " * CK_BOOL here (the class's initials), and CK_MAX is one past the last kind.",
        " */",
        "#ifndef PGMAGIC_OIDS_H",
        "#define PGMAGIC_OIDS_H",
        "",
        "/* pg_type.oid of built-in types, and of their array types */",
    ]
    out += [f"#define PGM_OID_{name} {oid}" for name, _, oid in oid_names()]
    out += [
        "",
        "/* OIDs of user-created objects start here (FirstNormalObjectId) */",
        f"#define PGM_FIRST_USER_OID {FIRST_USER_OID}",
    ]
    for enumeration in ENUMERATIONS:
        prefix = enumeration.c_prefix
        entries = [(m, f"{prefix}{m.name} = {m.number},") for m in enumeration.members]
        # comments line up among the entries that have one
        width = max([0, *(len(text) for m, text in entries if m.note)])
        doc = enumeration.doc[0].lower() + enumeration.doc[1:]
        out += ["", f"/* {enumeration.name}: {doc} ({enumeration.source}) */"]
        out.append("enum {")
        for member, text in entries:
            if member.group:
                out.append(f"    /* {member.group} */")
            note = f" /* {member.note} */" if member.note else ""
            out.append(f"    {text.ljust(width) if note else text}{note}")
        if enumeration.with_max:
            last = max(m.number for m in enumeration.members)
            out.append(f"    {prefix}MAX = {last + 1}")
        out.append("};")
    out += ["", "#endif /* PGMAGIC_OIDS_H */"]
    return "\n".join(out) + "\n"


def disagreements(rows: Iterable[tuple[str, int, int]]) -> list[str]:
    """How a server's ``pg_type`` differs from :data:`TYPES`.

    Parameters
    ----------
    rows : iterable of (str, int, int)
        ``typname``, ``oid`` and ``typarray`` of the built-in types found.

    Returns
    -------
    list of str
        One line per difference; empty when the server agrees.

    Examples
    --------
    >>> disagreements([("int4", 23, 1007)])[:1]
    ['bool: not in pg_type']
    """
    found = {name: (oid, array) for name, oid, array in rows}
    problems = []
    for t in TYPES:
        if t.typname not in found:
            problems.append(f"{t.typname}: not in pg_type")
        elif found[t.typname] != (t.oid, t.array_oid):
            oid, array = found[t.typname]
            problems.append(
                f"{t.typname}: the server has oid {oid}, typarray {array};"
                f" the list has {t.oid}, {t.array_oid}"
            )
    return problems


async def _catalog(dsn: str) -> list[tuple[str, int, int]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT typname::text, oid::int8, typarray::int8 FROM pg_catalog.pg_type"
            " WHERE oid < 10000 AND typname = ANY($1::text[])",
            [t.typname for t in TYPES],
        )
    finally:
        await conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


def _stale(root: Path) -> list[str]:
    """A unified diff per generated file that differs from what is on disk."""
    diffs = []
    for path, text in ((PYTHON_FILE, python_source()), (C_FILE, c_source())):
        target = root / path
        current = target.read_text() if target.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"{path} (on disk)",
                f"{path} (generated)",
            )
            diffs.append("".join(diff))
    return diffs


def main(argv: Sequence[str] | None = None) -> int:
    """Check the lists against a server if asked, then write or compare the files.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 1 when ``--check`` finds stale files or the server disagrees.

    Examples
    --------
    >>> main(["--check"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="check the OIDs against this server's pg_type first")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files are stale"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: ours)")
    args = parser.parse_args(argv)
    _check_lists()
    if args.dsn:
        problems = disagreements(asyncio.run(_catalog(args.dsn)))
        if problems:
            print("update_oids: the server disagrees with the list:", file=sys.stderr)
            print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
            return 1
    if args.check:
        diffs = _stale(args.root)
        if diffs:
            print("update_oids: stale generated files; run tools/update_oids.py", file=sys.stderr)
            print("".join(diffs), file=sys.stderr)
            return 1
        return 0
    for path, text in ((PYTHON_FILE, python_source()), (C_FILE, c_source())):
        target = args.root / path
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
