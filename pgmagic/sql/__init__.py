"""SQL text only: splitting cells, ``$name`` binding, ``COPY (query)`` wrapping.

:mod:`~pgmagic.sql.lexer` scans text by PostgreSQL's lexical rules;
:mod:`~pgmagic.sql.params` splits cells and binds values;
:mod:`~pgmagic.sql.copytext` writes the text of ``COPY (query) TO STDOUT`` for a
bound statement.  No I/O.

May import: errors
"""
