"""LISTEN/NOTIFY and what reacts to it: the listener, the log, refreshes.

:mod:`~pgmagic.live.listener` owns the listening connection and feeds the
bounded :mod:`~pgmagic.live.log`; :mod:`~pgmagic.live.subscriptions` is the
Python side (``async for``), :mod:`~pgmagic.live.send` sends ``NOTIFY``, and
:mod:`~pgmagic.live.refresh` re-runs queries on notifications or a timer.

May import: errors, runtime, sql, results
"""
