r"""psql's describe commands (``\d``, ``\dt``, ``\df+`` ...) as queries of ``pg_catalog``.

:mod:`~pgmagic.catalog.meta` reads a backslash command and its arguments;
:mod:`~pgmagic.catalog.patterns` turns psql's patterns (``public.ord*``,
``"Mixed Case"``) into anchored regular expressions bound as parameters;
:mod:`~pgmagic.catalog.listings` holds the listing commands (``\dt``,
``\dn``, ``\df``, ``\l`` ...) and :mod:`~pgmagic.catalog.describe` the
layouts of ``\d NAME`` (tables, views, indexes, sequences);
:mod:`~pgmagic.catalog.run` runs a command on the session connection.

Results are plain rows of text, titled and footed as psql prints them; the
front turns them into DataFrames and tables.  Catalog queries read
``pg_catalog`` only (never ``information_schema``), and names reach the
server as bound values, never pasted into the SQL.  No pandas, no IPython.

May import: errors, runtime
"""
