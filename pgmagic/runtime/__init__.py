"""The kernel-wide runtime: the loop thread, connections, the session, the target.

One asyncio loop on a daemon thread owns every asyncpg object
(:mod:`~pgmagic.runtime.loop`); the kernel's thread waits on it, and Ctrl-C
cancels on the server (:mod:`~pgmagic.runtime.waiting`).  Connections are
opened in :mod:`~pgmagic.runtime.connect` to the target that
:mod:`~pgmagic.runtime.dsn` resolves (or the :mod:`~pgmagic.runtime.embedded`
server); ``%%pg`` cells share the :mod:`~pgmagic.runtime.session` connection.
Each named connection is a runtime of its own, all on the one loop thread
(:mod:`~pgmagic.runtime.connections`).
:mod:`~pgmagic.runtime.history` records every statement run for the user.

asyncpg only: no pandas, no IPython.

May import: errors
"""
