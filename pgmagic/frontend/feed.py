"""Views of the listener: the feed widget in a cell, and the JupyterLab panel's comm.

Both are :class:`~pgmagic.live.listener.Sink` objects: the listener calls their
``update`` from the runtime's loop thread (at once after a quiet batch
interval, at most once per interval under load), and each pulls what is new
from the notification log.  Frontend messages (Clear, Pause,
``hello``, ``export``, ``complete``) arrive on the kernel's main thread or on a
subshell's, so every trait write and every comm send takes the view's lock.

A feed outlives its kernel in the saved notebook, so its display bundle holds
static HTML and text (:mod:`~pgmagic.frontend.feedstatic`) beside the widget
view, and :func:`end_of_cell` records each feed's latest state in the cell that
just ran: headless runners (nbclient, papermill, nbval) keep only messages
whose parent is the running cell, and the loop thread's updates carry the
``%pg listen`` cell's.

The panel protocol is ``labextension/INTEGRATION.md`` section 6: ``%load_ext``
registers the ``pgmagic.panel`` comm target and the front end opens the comm
(the kernel never does, so front ends without the extension see nothing);
``snapshot`` on open and on ``hello``; ``batch`` updates whose ``seq`` only
grows; ``export`` answered by ``exported`` or ``error``; ``complete`` answered
by ``completions``.  JupyterLab 4.4+ sends the comm's messages to a kernel
subshell (ipykernel 7+), so they are handled on the subshell's thread while
a cell runs on the main one.
"""

from __future__ import annotations

import collections
import keyword
import logging
import pathlib
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import anywidget
import comm
import traitlets
from comm.base_comm import BaseComm
from IPython import display as _display

from pgmagic.catalog.suggest import Suggestion
from pgmagic.errors import OptionError
from pgmagic.frontend import feedstatic
from pgmagic.frontend import schema as schema_view
from pgmagic.live import jobs
from pgmagic.live.listener import (
    Listener,
    ListenerState,
    Status,
    gather_into,
    listener_for,
    listeners,
)
from pgmagic.live.log import Gap, NotificationLog, RateMeter, check_channels
from pgmagic.runtime.loop import Runtime
from pgmagic.runtime.messages import Message

__all__ = [
    "PANEL_TARGET",
    "FeedView",
    "FeedWidget",
    "PanelBridge",
    "PanelServer",
    "broadcast",
    "end_of_cell",
    "listen",
    "serve_panel",
    "start_listening",
]

_STATIC = pathlib.Path(__file__).parents[1] / "_static"
#: Comm target of the JupyterLab side panel.
PANEL_TARGET = "pgmagic.panel"
# The widget resends its whole list on each update: keep it short.
_WIDGET_ITEMS = 200

#: Marks the feed's display bundle for the labextension, which shows the
#: widget view while its model lives and the bundle's HTML once it does not
#: (``labextension/src/savedFeed.ts``); other front ends ignore the type.
FEED_MIME = "application/vnd.pgmagic.feed+json"

#: What answers the panel's ``complete``: ``(code, pos, namespace)`` to the
#: start of the word at ``pos`` and its suggestions, or None.  The extension
#: passes :func:`pgmagic.frontend.complete.complete_code` (which this module
#: cannot import: complete imports commands, which imports this module).
Completer = Callable[[str, int, Mapping[str, Any]], "tuple[int, Sequence[Suggestion]] | None"]

_logger = logging.getLogger("pgmagic")

show: Callable[..., Any] = _display.display
update_display: Callable[..., Any] = _display.update_display


class FeedWidget(anywidget.AnyWidget):
    """The live notification feed shown by ``%pg listen`` (front end: ``_static/feed.js``).

    Its display bundle also holds static HTML and text of the same state and
    newest items, for viewers without the widget's model.

    Attributes
    ----------
    items : list of dict
        The newest items, oldest first, as :meth:`Notification.to_item` gives them.
    state : dict
        ``listener`` (listening, reconnecting, stopped), ``channels``, ``count``,
        ``rate`` (per second) and ``dropped`` (items the history lost).
    paused : bool
        Set by the Pause button; the view keeps its rows while true.
    """

    _esm = _STATIC / "feed.js"
    _css = _STATIC / "feed.css"
    items: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    state = traitlets.Dict().tag(sync=True)
    paused = traitlets.Bool(False).tag(sync=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The widget view, with static HTML and text of the same state for other viewers."""
        bundle = super()._repr_mimebundle_(**kwargs)
        assert bundle is not None
        data, metadata = bundle
        state, items = self.state, self.items
        return {
            **data,
            FEED_MIME: {},
            "text/plain": feedstatic.text(state, items),
            "text/html": feedstatic.html(state, items),
        }, metadata


# Feeds shown and not yet recorded as stopped; end_of_cell() records them.
_shown: weakref.WeakSet[FeedView] = weakref.WeakSet()


class FeedView:
    """Feeds one :class:`FeedWidget` with the notifications of some channels.

    Parameters
    ----------
    listener : Listener
    channels : sequence of str
    """

    def __init__(self, listener: Listener, channels: Sequence[str]) -> None:
        self.channels = frozenset(channels)
        self._listener = listener
        self._names = sorted(self.channels)
        self._lock = threading.Lock()
        self._window: collections.deque[dict[str, Any]] = collections.deque(maxlen=_WIDGET_ITEMS)
        self._seq = listener.log.last_seq
        self._base = listener.log.counts(self.channels)
        self._rate = RateMeter()
        self.widget = FeedWidget(state=self._state(listener.status))
        self.widget.on_msg(self._on_msg)
        self.widget.observe(self._on_paused, names="paused")
        #: Ties later updates of the saved output to the cell that showed it.
        self.display_id = uuid.uuid4().hex
        self._recorded: tuple[Any, ...] | None = None

    def _state(self, status: Status) -> dict[str, Any]:
        received, dropped = self._listener.log.counts(self.channels)
        count = received - self._base[0]
        live = bool(self.channels & status.listened)
        rate = self._rate.rate(count) if live else 0.0
        return {
            "listener": status.state.value if live else ListenerState.STOPPED.value,
            "channels": self._names,
            "count": count,
            "rate": round(rate, 1),
            "dropped": dropped - self._base[1],
        }

    def update(self, log: NotificationLog, status: Status) -> None:
        """Show what arrived since the last update (loop thread).

        Parameters
        ----------
        log : NotificationLog
        status : Status
        """
        new = log.since(self._seq)
        if new:
            self._seq = new[-1].seq
        mine = [
            item.to_item()
            for item in new
            if isinstance(item, Gap) or (item.channel in self.channels and not item.connection)
        ]
        state = self._state(status)
        with self._lock:
            self._window.extend(mine)
            if mine and not self.widget.paused:
                self.widget.items = list(self._window)
            if state != self.widget.state:
                self.widget.state = state
        if state["listener"] == ListenerState.STOPPED.value:
            # Unlistened: the widget keeps its last rows and says "stopped".
            self._listener.remove_sink(self)

    def _on_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "clear":
            with self._lock:
                self._window.clear()
                self.widget.items = []

    def _on_paused(self, change: Any) -> None:
        if not change["new"]:
            with self._lock:
                self.widget.items = list(self._window)

    def detach(self) -> None:
        """Stop updating the widget, and say so in it."""
        self._listener.remove_sink(self)
        with self._lock:
            self.widget.state = {**self.widget.state, "listener": "stopped"}

    def _shows(self) -> tuple[Any, ...]:
        """What a saved notebook shows of the widget (the rate is left out: it moves alone)."""
        state = {k: v for k, v in self.widget.state.items() if k != "rate"}
        items = self.widget.items
        return (sorted(state.items()), self.widget.paused, len(items), items[-1] if items else None)

    def display(self) -> None:
        """Show the widget, with its static fallback, under the running cell (main thread)."""
        with self._lock:
            self._recorded = self._shows()
            show(self.widget, display_id=self.display_id)
        _shown.add(self)

    def record(self) -> None:
        """Put the widget's current state in the running cell's messages (main thread).

        Sends the traits again (a headless runner saves them as the widget
        state) and updates the display (it saves that as the static fallback),
        only when what they show changed: a live front end would otherwise
        redraw the widget after every cell.
        """
        with self._lock:
            shows = self._shows()
            if shows == self._recorded:
                return
            self._recorded = shows
            self.widget.send_state(["state", "items", "paused"])
            update_display(self.widget, display_id=self.display_id)
        if self.widget.state.get("listener") == ListenerState.STOPPED.value:
            _shown.discard(self)


def end_of_cell() -> None:
    """Record every shown feed's latest state in the cell that just ran (``post_run_cell``)."""
    for view in list(_shown):
        view.record()


def listen(
    runtime: Runtime,
    channels: Sequence[str],
    *,
    on_message: Callable[[Message], None] | None = None,
    dsn: str | None = None,
) -> FeedView:
    """LISTEN on channels and give a live feed widget for them (``%pg listen``).

    A previous widget for the same channels stops updating (re-running a
    cell must not leave invisible widgets busy).

    Parameters
    ----------
    runtime : Runtime
    channels : sequence of str
    on_message : callable, optional
        Receives notes (the embedded server starting) while connecting.
    dsn : str, optional
        Where the listener connects instead of the runtime's target (a direct
        connection past a transaction pooler); see :meth:`Listener.listen`.

    Returns
    -------
    FeedView
        Its :meth:`FeedView.display` shows the widget.

    Raises
    ------
    OptionError
        No channel, or a bad channel name.
    ConnectError
        The listener connection could not be opened, or notifications do not
        arrive through it (a transaction pooler).

    Examples
    --------
    >>> listen(runtime, ["orders", "inventory"])  # doctest: +SKIP
    """
    listener, names = start_listening(runtime, channels, on_message, dsn)
    for sink in listener.sinks:
        if isinstance(sink, FeedView) and sink.channels == frozenset(names):
            sink.detach()
    view = FeedView(listener, names)
    listener.add_sink(view)
    return view


def start_listening(
    runtime: Runtime,
    channels: Sequence[str],
    on_message: Callable[[Message], None] | None,
    dsn: str | None,
) -> tuple[Listener, list[str]]:
    """LISTEN on checked channels through the runtime's listener, waiting for it.

    Parameters
    ----------
    runtime : Runtime
    channels : sequence of str
    on_message : callable or None
        Receives notes while connecting.
    dsn : str or None
        Where the listener connects instead of the runtime's target.

    Returns
    -------
    (Listener, list of str)
        The listener and the channels' names.
    """
    names = check_channels(channels)
    if not names:
        raise OptionError("usage: %pg listen CHANNEL [CHANNEL ...]")
    listener = listener_for(runtime)
    runtime.run(listener.listen(names, dsn=dsn), on_message=on_message)
    return listener, names


def _export_request(data: dict[str, Any]) -> tuple[str, str | None, str | None, int | None]:
    variable = data.get("variable")
    if not isinstance(variable, str) or not variable.isidentifier() or keyword.iskeyword(variable):
        raise OptionError(f"cannot export to {variable!r}: not a Python variable name")
    channel, text, after_seq = data.get("channel"), data.get("text"), data.get("after_seq")
    for name, value in (("channel", channel), ("text", text)):
        if value is not None and not isinstance(value, str):
            raise OptionError(f"export filter {name!r} must be a string or null")
    if after_seq is not None and (isinstance(after_seq, bool) or not isinstance(after_seq, int)):
        raise OptionError("export field 'after_seq' must be an integer")
    return variable, channel, text, after_seq


def _complete_request(data: dict[str, Any]) -> tuple[str, int]:
    code, pos = data.get("code"), data.get("pos")
    if not isinstance(code, str):
        raise OptionError("complete field 'code' must be a string")
    if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos <= len(code):
        raise OptionError("complete field 'pos' must be an offset into 'code'")
    return code, pos


def _header_subshell(data: Any, header_subshell: str | None) -> str | None:
    return header_subshell


class PanelBridge:
    """The kernel side of one ``pgmagic.panel`` comm, which a front end opened.

    Sends the snapshot at once, then batches until either side closes the comm.

    Parameters
    ----------
    listener : Listener
    namespace : mutable mapping
        Where ``export`` assigns its DataFrame, and what ``complete`` offers
        after ``$`` (the notebook's namespace).
    channel : comm.base_comm.BaseComm
        The comm the front end opened.
    completer : callable
        Answers ``complete`` requests (see :data:`Completer`).
    """

    def __init__(
        self,
        listener: Listener,
        namespace: MutableMapping[str, Any],
        channel: BaseComm,
        completer: Completer,
    ) -> None:
        self._listener = listener
        self._namespace = namespace
        self._completer = completer
        self._lock = threading.Lock()
        self._rate = RateMeter()
        self._seq = 0
        self._sent_state: dict[str, Any] | None = None
        self._closed = False
        self._comm = channel
        if hasattr(channel, "_reply_subshell_for"):
            # ipykernel 7 sends a comm's incoming messages to the subshell its
            # last outgoing one answered, not the one in their header; ours
            # leave from the runtime's thread too, under whichever parent was
            # set last, and a front end opens the comm before its subshell
            # exists: requests would queue behind the running cell.  Our
            # requests need no pairing, so the front end's choice stands.
            setattr(channel, "_reply_subshell_for", _header_subshell)  # noqa: B010 (not typed)
        channel.on_msg(self._on_msg)
        channel.on_close(self._on_close)
        # A snapshot and the batches after it must leave in seq order: both
        # are built and sent under the lock.
        with self._lock:
            channel.send(self._snapshot())
        listener.add_sink(self)

    def _state(self, status: Status) -> dict[str, Any]:
        received, dropped = self._listener.log.counts()
        # Every connection's listener feeds the panel: its channels, named.
        state, channels = status.state, sorted(status.channels)
        for other in listeners():
            if other is self._listener or not other.status.channels:
                continue
            if state is not ListenerState.RECONNECTING and other.state is not ListenerState.STOPPED:
                state = other.state
            name = other.runtime.connection_name()
            channels += [f"{name}: {c}" for c in sorted(other.status.channels)]
        return {
            "listener": state.value,
            "channels": channels,
            "count": received,
            "rate": round(self._rate.rate(received), 1),
            "dropped": dropped,
        }

    def _snapshot(self) -> dict[str, Any]:
        log = self._listener.log
        last = log.last_seq
        items = log.since(0)
        self._seq = items[-1].seq if items else last
        state = self._state(self._listener.status)
        self._sent_state = state
        return {"type": "snapshot", "items": [i.to_item() for i in items], "state": state}

    def update(self, log: NotificationLog, status: Status) -> None:
        """Send what arrived since the last batch (loop thread).

        Parameters
        ----------
        log : NotificationLog
        status : Status
        """
        with self._lock:
            if self._closed:
                return
            new = log.since(self._seq)
            if new:
                self._seq = new[-1].seq
            state = self._state(status)
            if new or state != self._sent_state:
                self._comm.send(
                    {"type": "batch", "items": [i.to_item() for i in new], "state": state}
                )
                self._sent_state = state

    def send(self, message: dict[str, Any]) -> None:
        """Send a message to the front end unless the comm has closed (any thread).

        Parameters
        ----------
        message : dict
            ``catalog-changed`` (its Schema view reads again), ``job-ended``, ...
        """
        with self._lock:
            if not self._closed:
                self._comm.send(message)

    def _on_msg(self, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data")
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "hello":
            with self._lock:
                if not self._closed:
                    self._comm.send(self._snapshot())
        elif kind == "export":
            assert isinstance(data, dict)
            self._export(data)
        elif kind == "complete":
            assert isinstance(data, dict)
            self._complete(data)
        elif kind == "cancel-job":
            assert isinstance(data, dict)
            self._cancel_job(data)
        elif kind in schema_view.REQUESTS:
            assert isinstance(data, dict)
            self._comm.send(schema_view.answer(self._listener.runtime, data))

    def _cancel_job(self, data: dict[str, Any]) -> None:
        """A handle's Cancel button: cancel the job on the server, answer at once.

        The handle itself shows ``cancelled`` when the job has wound down.
        """
        request_id, ref = data.get("id"), data.get("job")
        if isinstance(ref, bool) or not isinstance(ref, int):
            self.send({"type": "error", "id": request_id, "message": "cancel-job needs a job"})
            return
        try:
            job = jobs.find(ref)
        except OptionError:
            # A handle saved in the notebook, from a kernel that has since restarted.
            message = f"job {ref} is not in this kernel (it was restarted since)"
            self.send({"type": "error", "id": request_id, "message": message})
            return
        job.cancel()
        self.send({"type": "job-cancelling", "id": request_id, "job": job.number})

    def _complete(self, data: dict[str, Any]) -> None:
        """Answer a ``complete`` request, always with a ``completions`` reply.

        Runs on a subshell's thread while a cell may run on the main one: an
        error here must reach neither the comm nor that cell, and the front
        end waits for a reply with this id (an empty one when we fail).
        """
        request_id = data.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            request_id = None
        reply: dict[str, Any] = {
            "type": "completions",
            "id": request_id,
            "start": 0,
            "end": 0,
            "items": [],
        }
        try:
            code, pos = _complete_request(data)
            reply["start"] = reply["end"] = pos
            # A copy: the running cell may assign names meanwhile, and a dict
            # that changes size under an iteration raises.
            found = self._completer(code, pos, dict(self._namespace))
        except OptionError as error:
            _logger.debug("pgmagic: malformed complete request: %s", error)
            found = None
        except Exception:
            _logger.warning("pgmagic: completion failed", exc_info=True)
            found = None
        if found is not None:
            reply["start"] = found[0]
            reply["items"] = [
                {"label": s.text, "type": s.kind, "detail": s.detail} for s in found[1]
            ]
        with self._lock:
            if not self._closed:
                self._comm.send(reply)

    def _export(self, data: dict[str, Any]) -> None:
        try:
            variable, channel, text, after_seq = _export_request(data)
            frame = self._listener.log.to_frame(channel=channel, text=text, after_seq=after_seq)
        except (OptionError, ValueError, TypeError) as error:
            self._comm.send({"type": "error", "message": str(error)})
            return
        self._namespace[variable] = frame
        self._comm.send({"type": "exported", "variable": variable, "rows": len(frame)})

    def _on_close(self, msg: dict[str, Any]) -> None:
        # The front end closed the comm: nobody reads the batches any more.
        self._listener.remove_sink(self)
        with self._lock:
            self._closed = True

    def close(self) -> None:
        """Close the comm (the panel then says "pgmagic not loaded")."""
        self._listener.remove_sink(self)
        with self._lock:
            if not self._closed:
                self._closed = True
                self._comm.close()


class PanelServer:
    """The ``pgmagic.panel`` comm target of a kernel: a bridge per comm a front end opens.

    The kernel never opens the comm itself, so front ends without the
    extension (``nbconvert --execute``, papermill, a plain notebook) see
    nothing of the panel.  Each opened comm gets its own :class:`PanelBridge`;
    the JupyterLab extension re-attaches to a comm the kernel already holds
    before opening one, so page reloads do not pile bridges up.

    Parameters
    ----------
    runtime : Runtime
    namespace : mutable mapping
        The notebook's namespace, for ``export`` and ``complete``.
    completer : callable
        Answers ``complete`` requests (see :data:`Completer`).
    """

    def __init__(
        self, runtime: Runtime, namespace: MutableMapping[str, Any], completer: Completer
    ) -> None:
        self._runtime = runtime
        self._namespace = namespace
        self._completer = completer
        comm.get_comm_manager().register_target(PANEL_TARGET, self._attach)
        _servers.add(self)
        gather_into(listener_for(runtime))

    def _attach(self, channel: BaseComm, msg: dict[str, Any]) -> None:
        PanelBridge(listener_for(self._runtime), self._namespace, channel, self._completer)

    def send_all(self, message: dict[str, Any]) -> None:
        """Send a message to every open front end.

        Parameters
        ----------
        message : dict
        """
        for sink in listener_for(self._runtime).sinks:
            if isinstance(sink, PanelBridge):
                sink.send(message)

    def catalog_changed(self) -> None:
        """Tell every open front end that a cell ran DDL."""
        self.send_all({"type": "catalog-changed"})

    def close(self) -> None:
        """Unregister the target and close every open bridge's comm."""
        _servers.discard(self)
        if not _servers:
            gather_into(None)
        manager = comm.get_comm_manager()
        # A later load may have registered its own server meanwhile: leave that one.
        if manager.targets.get(PANEL_TARGET) == self._attach:
            manager.unregister_target(PANEL_TARGET, self._attach)
        for sink in listener_for(self._runtime).sinks:
            if isinstance(sink, PanelBridge):
                sink.close()


_servers: weakref.WeakSet[PanelServer] = weakref.WeakSet()


def broadcast(message: dict[str, Any]) -> None:
    """Send a message to every front end of every loaded pgmagic (any thread).

    Parameters
    ----------
    message : dict
    """
    for server in list(_servers):
        server.send_all(message)


def serve_panel(
    shell: Any,
    runtime: Runtime,
    namespace: MutableMapping[str, Any],
    *,
    history: int,
    completer: Completer,
) -> PanelServer | None:
    """Register the panel's comm target on the shell's kernel (``%load_ext``).

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    runtime : Runtime
    namespace : mutable mapping
        The notebook's namespace, for ``export`` and ``complete``.
    history : int
        Items the notification log keeps (``PgMagics.notify_history``).
    completer : callable
        Answers ``complete`` requests (see :data:`Completer`).

    Returns
    -------
    PanelServer or None
        None without a kernel (terminal IPython): no front end can open a comm.

    Examples
    --------
    >>> server = serve_panel(  # doctest: +SKIP
    ...     shell, runtime, shell.user_ns, history=10_000, completer=complete_code
    ... )
    >>> server.close()  # doctest: +SKIP
    """
    listener_for(runtime).log.resize(history)
    if getattr(shell, "kernel", None) is None:
        return None
    return PanelServer(runtime, namespace, completer)
