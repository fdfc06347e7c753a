"""A TCP proxy of the tests' own, on 127.0.0.1, that can go silent like a hung peer.

``Proxy(dsn)`` listens on a free loopback port and forwards every connection to
the server ``dsn`` names (TCP, or a unix socket for ``?host=/folder`` DSNs);
``proxy.dsn`` is the same DSN (user, password, database, other parameters)
pointing at the proxy.  While ``proxy.frozen`` is set, bytes are read but not
forwarded, in either direction, and new connections are accepted but hear
nothing: the peer's TCP stack still answers (keepalives succeed), its server
does not, as with a hung proxy or a blackholed route.  Clearing it delivers
what was held, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.parse
from collections.abc import Iterator

__all__ = ["Proxy"]


class Proxy:
    """A TCP front for a PostgreSQL server that can go silent.

    Parameters
    ----------
    dsn : str
        A ``postgresql://`` URL of the server: TCP, or a unix socket folder in
        the ``host`` query parameter.
    """

    def __init__(self, dsn: str) -> None:
        parts = urllib.parse.urlsplit(dsn)
        query = urllib.parse.parse_qsl(parts.query)
        socket_dir = next((v for k, v in query if k == "host" and v.startswith("/")), None)
        port = next((int(v) for k, v in query if k == "port"), None) or parts.port or 5432
        self.unix = f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else None
        self.upstream = (parts.hostname or "127.0.0.1", port)
        self.frozen = threading.Event()
        self.writers: list[asyncio.StreamWriter] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        ).result()
        self.port: int = self.server.sockets[0].getsockname()[1]
        # The user's part of the URL as it was (a password stays percent-encoded);
        # only the address changes, and the query loses what named the old one.
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else "postgres"
        rest = [(k, v) for k, v in query if k not in ("host", "port")]
        self.dsn = urllib.parse.urlunsplit(
            parts._replace(
                netloc=f"{userinfo}@127.0.0.1:{self.port}",
                path=parts.path if parts.path not in ("", "/") else "/postgres",
                query=urllib.parse.urlencode(rest),
            )
        )

    @contextlib.contextmanager
    def silent(self) -> Iterator[None]:
        """Freeze for the duration of a ``with`` block, thawing even if it fails."""
        self.frozen.set()
        try:
            yield
        finally:
            self.frozen.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.unix:
                up_reader, up_writer = await asyncio.open_unix_connection(self.unix)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self.writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                while self.frozen.is_set():
                    await asyncio.sleep(0.02)
                writer.write(data)
                await writer.drain()
        writer.close()

    def close(self) -> None:
        """Close every connection through the proxy and stop it."""

        async def shut() -> None:
            self.server.close()
            for writer in self.writers:
                writer.close()
            await asyncio.sleep(0.05)

        self.frozen.clear()
        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
