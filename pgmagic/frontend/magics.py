"""``%pg`` and ``%%pg``: parse the line, hand the work to the package below, show the value.

The configuration traits live in :mod:`pgmagic.frontend.config`, the options
in :mod:`pgmagic.frontend.options`, the subcommands in
:mod:`pgmagic.frontend.commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from IPython.core import magic as _magic
from IPython.core.magic import magics_class, no_var_expand

from pgmagic.bulk import export
from pgmagic.bulk.stream import Stream
from pgmagic.frontend import commands, jobs, options, progress, psql, tables, watch
from pgmagic.frontend.config import Configuration
from pgmagic.frontend.output import CellOutput, print_message
from pgmagic.results.cell import Mode, bind_one, run_cell, run_many

__all__ = ["PgMagics"]

F = TypeVar("F", bound=Callable[..., Any])
# IPython's decorators are untyped; these aliases give them the types they have.
line_cell_magic = cast(Callable[[F], F], _magic.line_cell_magic)


@magics_class
class PgMagics(Configuration):
    """PostgreSQL magics: ``%%pg`` cells and ``%pg`` lines.

    Configure with ``%config PgMagics.<name> = value``.
    """

    @no_var_expand
    @options.declare
    @line_cell_magic
    def pg(self, line: str, cell: str | None = None) -> Any:
        r"""Run SQL on PostgreSQL; ``$name`` binds the notebook variable ``name``.

        Forms ([optional], a | b: one of them)

            %%pg [-o NAME] [--one | --scalar | --arrow | --polars | --pandas] [-p EXPR] [-q]
            %pg [options] SQL                                  SQL on one line
            %pg connect [NAME] [--pooler] DSN | $variable | --embedded
            %pg connect NAME | use NAME | connections | close NAME   named connections
            %%pg @NAME [options] | %%pg --conn NAME            this cell on NAME
            %pg status | disconnect | help | stop | refresh      refresh: re-read for Tab
            %%pg --stream [--chunksize N] -o NAME              iterate: for df in NAME
            %%pg --to FILE.parquet|.csv|.csv.gz|.jsonl         stream to a file
            %%pg --bg [-o NAME | --to FILE]                    in the background; %pg jobs
            %%pg --many EXPR                                   once per row of EXPR
            %%pg --explain | --explain-analyze [-o NAME]       the plan of the last statement
            %pg load DATAFRAME|FILE INTO table [--create | --append | --replace]
            %%pg --refresh-on CHANNEL | --watch SECONDS        live output; %pg stop ends it
            %pg listen [--dsn DSN] CHANNEL ... | unlisten CHANNEL ... | unlisten --all
            %pg notify CHANNEL [PAYLOAD | $variable]
            %pg \d [NAME] | \dt | \df+ PATTERN | \l | ...      or: tables [P] | describe NAME
            %pg history [-n N] [--all] [PATTERN] | history --clear   what ran, newest last

        Examples::

            %pg connect --embedded
            %pg -q CREATE TABLE help_demo (id int, tag text)
            %pg -q --many "[(1, 'a'), (2, 'b'), (3, 'b')]" INSERT INTO help_demo VALUES ($1, $2)
            tags = ["b"]
            df = %pg SELECT * FROM help_demo WHERE tag = any($tags)
            n = %pg --scalar SELECT count(*) FROM help_demo
            row = %pg --one -p "(1,)" SELECT * FROM help_demo WHERE id = $1
            plan = %pg --explain-analyze DELETE FROM help_demo WHERE tag = any($tags)
            %pg -q --to "help demo.csv" SELECT * FROM help_demo
            %pg load df INTO help_copy --create   # a DataFrame, an Arrow table or a file
            %pg listen help_events                # a live feed of notifications
            %pg notify help_events "hello"
            %pg unlisten --all
            %pg status
            %pg @embedded connections             # %pg connect NAME DSN adds one
            %pg -q DROP TABLE help_demo, help_copy

        Options and subcommands read their words as a shell does: quote a
        value with spaces (``--to "my file.csv"``, ``-p "(1, 'a')"``), and an
        unquoted ``#`` starts a comment.  After the options, the SQL is
        SQL's own (``#`` is an operator there).  Channel names are
        identifiers: ``Orders`` is ``orders``; quote to keep case or spaces.

        A cell may hold several statements; each non-query statement prints its command tag
        and the last query's result is shown and returned as a DataFrame (dtypes follow the
        column types).  Values are sent as server-side parameters, never pasted into the SQL.
        """
        name, line = options.connection_prefix(line)
        try:
            self.run_on(name)
            return self._pg(line, cell)
        finally:
            self.call_ended()

    def _pg(self, line: str, cell: str | None) -> Any:
        if cell is None and (subcommand := commands.find(line)) is not None:
            self.runtime.printer = print_message
            return subcommand(self)
        opts, tokens, rest = options.parse(line, vars(PgMagics.pg)["parser"])
        self.run_on(opts.conn)
        self.runtime.printer = None if opts.quiet else print_message
        sql = options.sql_of(rest, tokens, cell)
        positional: tuple[Any, ...] = ()
        if opts.params is not None:
            values = self.evaluate(opts.params)
            positional = tuple(values) if isinstance(values, list | tuple) else (values,)
        if opts.background:
            jobs.start(self, opts, sql, positional)
            return None
        if cell is not None and psql.in_cell(cell):
            return psql.run_cell_with_commands(self, opts, cell, positional)
        if opts.live:
            watch.start(self, opts, sql, positional)
            return None
        if opts.bulk:
            return self._bulk(opts, sql, positional)
        kind = self.frame_for(opts.frame)
        backend = self.backend_for(opts.dtype_backend, kind)
        shown = CellOutput(self.displaylimit, self.numeric_as_float, kind, backend)
        with progress.Bar("fetching", quiet=opts.quiet) as bar:
            outcome = run_cell(
                self.runtime,
                sql,
                self.namespace,
                positional,
                mode=opts.mode,
                numeric_as_float=self.numeric_as_float,
                quiet=opts.quiet,
                on_message=None if opts.quiet else shown,
                max_rows=self.max_rows,
                on_progress=bar.update,
                frame=kind,
                dtype_backend=backend,
            )
        value, last = outcome.value, outcome.shown
        no_row = opts.mode is not Mode.FRAME and last is not None and not last.records
        if no_row and not opts.quiet:
            print("(0 rows)")  # psql's words; the value is None
        if opts.mode is Mode.FRAME and value is not None and last is not None:
            tables.remember(value, shown.info(last, outcome.elapsed))
        elif opts.mode is Mode.SCALAR:
            tables.mark_scalar(value)
        if opts.out:
            self.namespace[opts.out] = value
        return value

    def _bulk(self, opts: options.Options, sql: str, positional: tuple[Any, ...]) -> Any:
        """--stream, --to and --many: the big-result paths."""
        if opts.many:
            outcome = run_many(
                self.runtime,
                sql,
                self.evaluate(opts.many),
                on_message=None if opts.quiet else print_message,
            )
            if not opts.quiet:
                print(outcome)
            return None
        bound = bind_one(sql, self.namespace, positional)
        if opts.stream:
            kind = self.frame_for(opts.frame)
            stream = Stream(
                self.runtime,
                bound,
                chunksize=opts.chunksize,
                numeric_as_float=self.numeric_as_float,
                idle_timeout=self.stream_idle_timeout,
                frame=kind,
                dtype_backend=self.backend_for(opts.dtype_backend, kind),
            ).open()
            if opts.out:
                # Not also the cell's value: the output history would keep the
                # stream (and its transaction) alive after the user drops it.
                self.namespace[opts.out] = stream
                if not opts.quiet:
                    print(f"{opts.out}: {stream!r}")
                return None
            return stream
        target = str(opts.to)
        with progress.Bar(f"→ {target}", quiet=opts.quiet) as bar:
            result = export.export(
                self.runtime,
                bound,
                target,
                fmt=opts.format,
                chunksize=opts.chunksize,
                numeric_as_float=self.numeric_as_float,
                on_tick=bar.update,
            )
        if not opts.quiet:
            print(result.summary())
        return None
