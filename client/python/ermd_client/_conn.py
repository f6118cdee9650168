"""The connection to ermd: frames, request ids, replies and events.

One asyncio stream per Connection.  A reader task reads every frame the
daemon sends: a reply goes to the future of its request id, an event
(``{"method": "event", ...}``) to every listener registered with
add_listener.  Requests may be in flight concurrently (the daemon answers
by id, in any order).
"""

import asyncio
import json
import os
import struct

DEFAULT_SOCKET = "/run/ermd/ermd.sock"

# Error codes of the protocol (spec section 3).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = 1001
PERMISSION_DENIED = 1002
CONFLICT = 1003
BREAKER_OPEN = 1004
LIMIT_EXCEEDED = 1005
IO_ERROR = 1006
UNAVAILABLE = 1007
CORRUPTED = 1008
TIMEOUT = 1009
CANCELLED = 1010


class ErmdError(Exception):
    """An error reply of the daemon: ``code``, ``message``, ``data``."""

    def __init__(self, code, message, data=None, method=None):
        super().__init__("%s (%s)" % (message, code))
        self.code = code
        self.message = message
        self.data = data if isinstance(data, dict) else {}
        self.method = method


class CircuitBreakerOpenError(ErmdError):
    """Error 1004: a breaker did not permit the call.

    ``breaker``, ``state`` and ``retry_after`` (seconds) come from the
    reply's data."""

    @property
    def breaker(self):
        return self.data.get("breaker")

    @property
    def state(self):
        return self.data.get("state")

    @property
    def retry_after(self):
        ms = self.data.get("retry_after_ms")
        return ms / 1000.0 if isinstance(ms, int) else None


# The seed's spelling.
CircuitBreakerOpenException = CircuitBreakerOpenError


class DaemonConnectionError(ConnectionError):
    """The connection to ermd could not be made or was lost."""


def _make_error(err, method):
    if not isinstance(err, dict):
        return ErmdError(INTERNAL_ERROR, "malformed error reply", None, method)
    code = err.get("code")
    cls = CircuitBreakerOpenError if code == BREAKER_OPEN else ErmdError
    return cls(code, err.get("message", ""), err.get("data"), method)


def socket_path(path=None):
    """The socket to use: the argument, then $ERMD_SOCKET, then the default."""
    return path or os.environ.get("ERMD_SOCKET") or DEFAULT_SOCKET


class Connection:
    """One connection to ermd, shared by everything a manager does."""

    def __init__(self, path=None):
        self.path = socket_path(path)
        self._reader = None
        self._writer = None
        self._task = None
        self._pending = {}
        self._next_id = 0
        self._listeners = []
        self._subscribed = {}          # type -> count of wanting listeners
        self._sub_lock = None
        self.max_frame = 1 << 20
        self.methods = []
        self.server = {}
        self._closed_exc = None

    async def open(self, client="ermd_client (python)"):
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                self.path)
        except OSError as e:
            raise DaemonConnectionError(
                "cannot connect to ermd at %s: %s" % (self.path, e)) from e
        self._sub_lock = asyncio.Lock()
        self._task = asyncio.ensure_future(self._read_loop())
        hello = await self.call("hello", {"client": client[:128],
                                          "protocol": 1})
        self.server = hello
        self.max_frame = hello.get("max_frame", self.max_frame)
        self.methods = list(hello.get("methods", []))
        return self

    def has(self, method):
        return method in self.methods

    @property
    def closed(self):
        return self._writer is None or self._closed_exc is not None

    async def close(self):
        task, self._task = self._task, None
        if self._writer is not None:
            try:
                self._writer.close()
                await self._writer.wait_closed()
            except (OSError, ConnectionError):
                pass
        if task is not None:
            task.cancel()
            try:
                await task
            except BaseException:       # noqa: B902 - the task is done
                pass
        self._fail_all(DaemonConnectionError("connection closed"))

    def _fail_all(self, exc):
        if self._closed_exc is None:
            self._closed_exc = exc
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    async def _read_loop(self):
        try:
            while True:
                head = await self._reader.readexactly(4)
                (n,) = struct.unpack(">I", head)
                body = await self._reader.readexactly(n)
                msg = json.loads(body.decode("utf-8"))
                if not isinstance(msg, dict):
                    continue
                if msg.get("method") == "event":
                    self._dispatch(msg.get("params") or {})
                    continue
                rid = msg.get("id")
                if rid is None:
                    # A connection-level error (frame too large, ...): the
                    # daemon closes the connection after it.
                    self._fail_all(_make_error(msg.get("error"), None))
                    continue
                fut = self._pending.pop(rid, None)
                if fut is None or fut.done():
                    continue
                if "error" in msg:
                    fut.set_exception(_make_error(msg["error"],
                                                  getattr(fut, "method", None)))
                else:
                    fut.set_result(msg.get("result") or {})
        except asyncio.CancelledError:
            raise
        except (asyncio.IncompleteReadError, OSError, ValueError) as e:
            self._fail_all(DaemonConnectionError(
                "connection to ermd lost: %s" % (e,)))

    def _dispatch(self, event):
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:   # a listener's bug must not stop the reader
                import traceback
                traceback.print_exc()

    async def call(self, method, params=None):
        """Send one request and return its result (a dict); raise ErmdError
        for an error reply."""
        if self._closed_exc is not None:
            raise self._closed_exc
        if self._writer is None:
            raise DaemonConnectionError("not connected")
        self._next_id += 1
        rid = self._next_id
        body = json.dumps({"id": rid, "method": method,
                           "params": params or {}},
                          separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
        if len(body) > self.max_frame:
            raise ValueError("request of %d bytes is larger than max_frame "
                             "(%d)" % (len(body), self.max_frame))
        fut = asyncio.get_running_loop().create_future()
        fut.method = method
        self._pending[rid] = fut
        try:
            self._writer.write(struct.pack(">I", len(body)) + body)
            await self._writer.drain()
        except (OSError, ConnectionError) as e:
            self._pending.pop(rid, None)
            if fut.done():
                fut.exception()         # the reader failed it first: seen
            else:
                fut.cancel()
            exc = DaemonConnectionError("connection to ermd lost: %s" % (e,))
            self._fail_all(exc)
            raise exc from e
        return await fut

    # ---- events --------------------------------------------------------

    def add_listener(self, fn):
        """fn(event_params) is called (in the reader task) for every event."""
        self._listeners.append(fn)

    def remove_listener(self, fn):
        try:
            self._listeners.remove(fn)
        except ValueError:
            pass

    async def want_events(self, types):
        """Add types to the connection's subscription (a union: every user
        of the connection keeps what it asked for)."""
        async with self._sub_lock:
            new = [t for t in types if t not in self._subscribed]
            for t in types:
                self._subscribed[t] = self._subscribed.get(t, 0) + 1
            if new:
                await self.call("events.subscribe",
                                {"types": sorted(self._subscribed)})

    async def unwant_events(self, types):
        async with self._sub_lock:
            gone = []
            for t in types:
                n = self._subscribed.get(t, 0) - 1
                if n <= 0:
                    self._subscribed.pop(t, None)
                    gone.append(t)
                else:
                    self._subscribed[t] = n
            if gone and not self.closed:
                await self.call("events.subscribe",
                                {"types": sorted(self._subscribed)})
