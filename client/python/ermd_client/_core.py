"""The seed's API over ermd: ErrorRecoveryManager, CircuitBreaker,
RetryConfig, recovery_operation."""

import asyncio
import functools
import inspect
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from ._conn import (CircuitBreakerOpenError, Connection, ErmdError,
                    PERMISSION_DENIED, CONFLICT)
from ._errors import ErrorType, RecoveryStrategy, error_object

log = logging.getLogger("ermd_client")


async def _maybe_await(v):
    if inspect.isawaitable(v):
        return await v
    return v


def _call_cb(cb, *args):
    """Call a user callback (sync or async) from the reader task."""
    try:
        r = cb(*args)
        if inspect.isawaitable(r):
            asyncio.ensure_future(r)
    except Exception:
        log.exception("ermd_client: callback %r failed", cb)


def _cut_bytes(s, limit):
    b = s.encode("utf-8", "replace")
    return s if len(b) <= limit else b[:limit].decode("utf-8", "ignore")


# ---- configuration objects ------------------------------------------------

@dataclass
class RetryConfig:
    """The seed's RetryConfig. Sent to the daemon as a retry policy object:
    max_attempts, base_delay_ms = base_delay*1000, max_delay_ms,
    factor = backoff_factor, jitter = "full" or "none", and retry_on = the
    categories of retryable_exceptions (classified by the daemon) when
    given, else the daemon's [retry] retry_on."""
    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    backoff_factor: float = 2.0
    jitter: bool = True
    retryable_exceptions: Optional[Tuple[Type[BaseException], ...]] = None

    def policy_object(self, retry_on=None):
        p = {
            "max_attempts": int(self.max_attempts),
            "base_delay_ms": int(round(self.base_delay * 1000)),
            "max_delay_ms": int(round(self.max_delay * 1000)),
            "backoff": "exponential",
            "factor": float(self.backoff_factor),
            "jitter": "full" if self.jitter else "none",
        }
        if retry_on is not None:
            p["retry_on"] = list(retry_on)
        return p


class CircuitState(str):
    """A breaker state; compares equal to the wire's string."""
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


@dataclass
class CircuitBreakerConfig:
    """The seed's CircuitBreakerConfig.

    failure_threshold and recovery_timeout (seconds) become the breaker's
    failure_threshold and recovery_timeout_ms through breaker.configure when
    a config is given to CircuitBreaker and the peer may (an admin);
    otherwise the daemon's [breaker] and [breaker.NAME] settings apply.
    expected_exception_types is applied by the client: an exception of
    another type is recorded as "ignored".
    state_change_callback(old_state, new_state) is called on every
    breaker.state event of the breaker.  daemon_config: further breaker
    keys (conf/ermd.conf [breaker]) to configure."""
    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    expected_exception_types: Tuple[Type[BaseException], ...] = (Exception,)
    state_change_callback: Optional[Callable] = None
    daemon_config: Optional[Dict[str, Any]] = None

    def breaker_config(self):
        c = {"failure_threshold": int(self.failure_threshold),
             "recovery_timeout_ms": int(round(self.recovery_timeout * 1000))}
        if self.daemon_config:
            c.update(self.daemon_config)
        return c


@dataclass
class Classification:
    category: ErrorType
    primary: RecoveryStrategy
    fallback: Optional[RecoveryStrategy]
    retryable: bool
    matched: str

    @classmethod
    def from_reply(cls, r):
        def strat(v):
            try:
                return RecoveryStrategy(v) if v is not None else None
            except ValueError:
                return v
        try:
            cat = ErrorType(r.get("category"))
        except ValueError:
            cat = r.get("category")
        s = r.get("strategy") or {}
        return cls(cat, strat(s.get("primary")), strat(s.get("fallback")),
                   bool(r.get("retryable")), r.get("matched", ""))


@dataclass
class RecoveryResult:
    """Everything execute() learnt; execute_with_recovery returns
    (success, result, error) of it."""
    success: bool
    result: Any = None
    error: Optional[BaseException] = None
    op: Optional[str] = None
    decision: Optional[str] = None      # the final op.fail decision,
    #                                     "rejected" (breaker) or "error"
    category: Optional[str] = None
    strategy: Optional[Dict[str, Any]] = None
    attempts: int = 0
    recovered: bool = False
    backups: List[Dict[str, Any]] = field(default_factory=list)
    rolled_back: List[Dict[str, Any]] = field(default_factory=list)
    backend: Optional[str] = None
    daemon_error: Optional[Exception] = None    # ErmdError or a
    #                                             DaemonConnectionError

    def as_tuple(self):
        return self.success, self.result, self.error


@dataclass
class StorageBackend:
    """The backend storage.select gave: name, type ("dir"|"http"),
    location (a directory or a URL)."""
    name: str
    type: str
    location: str

    def __str__(self):
        return self.name


class WorkflowStepError(Exception):
    """A step of a workflow that failed: step, error (the daemon's error
    object) and exception (the Python exception of a client step)."""

    def __init__(self, step, error=None, exception=None):
        self.step = step
        self.error = error or {}
        self.exception = exception
        if exception is not None:
            msg = "%s: %s" % (type(exception).__name__, exception)
        else:
            msg = self.error.get("message") or json.dumps(self.error)
        super().__init__("step %r failed: %s" % (step, msg))


# ---- circuit breakers -----------------------------------------------------

_breaker_seq = 0


def _private_breaker_name():
    global _breaker_seq
    _breaker_seq += 1
    return "python.%d.%d" % (os.getpid(), _breaker_seq)


class _BreakerCall:
    def __init__(self, breaker):
        self._b = breaker
        self._permit = None
        self._t0 = 0.0

    async def __aenter__(self):
        b = self._b
        await b._ensure()
        loop = asyncio.get_running_loop()
        r = await b._conn.call("breaker.acquire", {"name": b.name})
        self._permit = r.get("permit")
        b._state = CircuitState(r.get("state", b._state))
        self._t0 = loop.time()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        b = self._b
        dur = int((asyncio.get_running_loop().time() - self._t0) * 1000)
        params = {"name": b.name, "duration_ms": max(dur, 0)}
        if self._permit:
            params["permit"] = self._permit
        if exc is None:
            params["outcome"] = "success"
        elif isinstance(exc, Exception) and \
                isinstance(exc, tuple(b.config.expected_exception_types)):
            params["outcome"] = "failure"
            params["error"] = error_object(exc)
        else:
            params["outcome"] = "ignored"
        try:
            r = await b._conn.call("breaker.record", params)
            b._state = CircuitState(r.get("state", b._state))
        except (ErmdError, ConnectionError) as e:
            log.warning("ermd_client: breaker.record %s: %s", b.name, e)
        return False


class CircuitBreaker:
    """A host-wide circuit breaker of ermd, used as the seed's:

        async with breaker.execute(fn):
            await fn()

    Entering takes a permit (breaker.acquire; CircuitBreakerOpenError when
    the breaker refuses: the body does not run); leaving records the
    outcome.  name: the daemon's breaker name (shared host-wide by every
    user of the name); without one, a private name python.<pid>.<n>.
    config: sent with breaker.configure only when given; without it the
    daemon's [breaker] and [breaker.NAME] settings apply.  Standalone, it
    opens its own connection (socket_path, $ERMD_SOCKET, the default) on
    first use; close it with `await breaker.close()` or use
    `async with CircuitBreaker(...) as breaker`."""

    def __init__(self, config=None, name=None, *, manager=None,
                 connection=None, socket_path=None, apply_config=True):
        # Only a config the caller gave is sent (breaker.configure): without
        # one, the daemon's [breaker] and [breaker.NAME] settings stand
        # rather than being overwritten host-wide with this class's defaults.
        self._apply = apply_config and config is not None
        self.config = config or CircuitBreakerConfig()
        self.private = not name
        self.name = name or _private_breaker_name()
        self._manager = manager
        self._conn = connection
        self._own = False
        self._socket_path = socket_path
        self._ready = False
        self._state = CircuitState(CircuitState.CLOSED)
        self.config_applied = None      # True/False once tried
        self._listener = None
        self._lock = None

    @property
    def state(self):
        """The state last seen (acquire, record, events, get_state)."""
        return self._state

    async def _ensure(self):
        if self._ready:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._ready:
                await self._setup()

    async def _setup(self):
        if self._conn is None:
            if self._manager is not None:
                self._conn = await self._manager._connection()
            else:
                self._conn = await Connection(self._socket_path).open()
                self._own = True
        if self._apply and self.config_applied is None:
            try:
                r = await self._conn.call("breaker.configure", {
                    "name": self.name,
                    "config": self.config.breaker_config()})
                self._state = CircuitState(r.get("state", self._state))
                self.config_applied = True
            except ErmdError as e:
                if e.code != PERMISSION_DENIED:
                    raise
                self.config_applied = False
        if self.config.state_change_callback is not None and \
                self._listener is None:
            cb = self.config.state_change_callback

            def on_event(ev, self=self, cb=cb):
                if ev.get("type") != "breaker.state" or \
                        ev.get("name") != self.name:
                    return
                old = CircuitState(ev.get("from", ""))
                new = CircuitState(ev.get("to", ""))
                self._state = new
                _call_cb(cb, old, new)
            self._listener = on_event
            self._conn.add_listener(on_event)
            await self._conn.want_events(["breaker.state"])
        self._ready = True

    def execute(self, fn=None):
        """An async context manager guarding one call (fn is informative)."""
        return _BreakerCall(self)

    async def call(self, fn, *args, **kwargs):
        """Run fn(*args, **kwargs) (sync or async) under the breaker."""
        async with self.execute(fn):
            return await _maybe_await(fn(*args, **kwargs))

    async def get(self):
        """breaker.get: state, config, window, ... (1001 before first use)."""
        await self._ensure()
        r = await self._conn.call("breaker.get", {"name": self.name})
        self._state = CircuitState(r.get("state", self._state))
        return r

    async def get_state(self):
        return CircuitState((await self.get())["state"])

    async def reset(self):
        await self._ensure()
        r = await self._conn.call("breaker.reset", {"name": self.name})
        self._state = CircuitState(r.get("state", self._state))
        return r

    async def force(self, state):
        await self._ensure()
        r = await self._conn.call("breaker.force",
                                  {"name": self.name, "state": str(state)})
        self._state = CircuitState(r.get("state", self._state))
        return r

    async def close(self):
        """Let go of the breaker.  A private breaker (no name given) is
        reset when this peer may (an admin), so that it does not stay open
        in the host's metrics after its process is gone; closed and idle,
        the daemon forgets it after [breaker] idle_evict_ms."""
        conn = self._conn
        if self._listener is not None and conn is not None:
            conn.remove_listener(self._listener)
            self._listener = None
            if not self._own and not conn.closed:
                try:
                    await conn.unwant_events(["breaker.state"])
                except (ErmdError, ConnectionError):
                    pass
        if self.private and self._ready and \
                self.config_applied is not False and \
                conn is not None and not conn.closed:
            try:
                await conn.call("breaker.reset", {"name": self.name})
            except (ErmdError, ConnectionError):
                pass
        if self._own and conn is not None:
            await conn.close()
            self._conn = None
        self._ready = False

    async def __aenter__(self):
        await self._ensure()
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False


# ---- fallback storage -----------------------------------------------------

class FallbackStorage:
    """The daemon's storage backends as the seed's fallback_storage.
    current_storage is the backend last used by execute_with_fallback, or
    the daemon's current one (storage.status) as last refreshed."""

    def __init__(self, manager):
        self._m = manager
        self.current_storage = None
        self.backends = []
        self.policy = None

    async def status(self):
        r = await (await self._m._connection()).call("storage.status")
        self.backends = r.get("backends", [])
        self.policy = r.get("policy")
        self.current_storage = r.get("current")
        return r

    refresh = status

    async def check(self, backend=None):
        p = {"backend": backend} if backend else {}
        r = await (await self._m._connection()).call("storage.check", p)
        self.backends = r.get("backends", [])
        self.current_storage = r.get("current")
        return r

    async def select(self, exclude=()):
        r = await (await self._m._connection()).call(
            "storage.select", {"exclude": list(exclude)})
        return StorageBackend(r.get("backend"), r.get("type"),
                              r.get("location"))

    async def report(self, backend, ok, error=None, latency=None):
        p = {"backend": str(backend), "ok": bool(ok)}
        if error is not None:
            p["error"] = error if isinstance(error, dict) else \
                error_object(error)
        if latency is not None:
            p["latency_ms"] = max(int(latency * 1000), 0)
        return await (await self._m._connection()).call("storage.report", p)

    async def put(self, key, path):
        r = await (await self._m._connection()).call(
            "storage.put", {"key": key, "path": os.path.abspath(path)})
        self.current_storage = r.get("backend", self.current_storage)
        return r

    async def get(self, key, path):
        return await (await self._m._connection()).call(
            "storage.get", {"key": key, "path": os.path.abspath(path)})


def _accepts_backend(fn, args, kwargs):
    """Whether fn can take the backend as its first positional argument."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        sig.bind(None, *args, **kwargs)
        return True
    except TypeError:
        return False


# ---- workflows --------------------------------------------------------------

class _ClientStep:
    def __init__(self, fn, args, kwargs, compensate, comp_args, comp_kwargs):
        self.fn = fn
        self.args = tuple(args or ())
        self.kwargs = dict(kwargs or {})
        self.compensate = compensate
        self.comp_args = tuple(comp_args or ())
        self.comp_kwargs = dict(comp_kwargs or {})


class _Workflow:
    def __init__(self, wid, name):
        self.id = wid
        self.name = name
        self.steps = {}         # name -> _ClientStep
        self.results = {}       # name -> what the callable returned
        self.exceptions = {}    # name -> the exception it raised
        self.final = None


def _output(v):
    if v is None:
        return None
    try:
        if isinstance(v, dict):
            json.dumps(v, allow_nan=False)
            return v
        json.dumps(v, allow_nan=False)
        return {"result": v}
    except (TypeError, ValueError):
        return {"repr": _cut_bytes(repr(v), 4096)}


_DEFAULT = object()


class ErrorRecoveryManager:
    """The seed's ErrorRecoveryManager, backed by the host-wide ermd.

    async with ErrorRecoveryManager() as m:
        ok, result, err = await m.execute_with_recovery(fn, "name", path,
                                                        create_backup=True)

    socket_path: the daemon's socket (else $ERMD_SOCKET, else
    /run/ermd/ermd.sock).  retry_config (a RetryConfig) or policy (the name
    of a [retry.NAME] policy) set the retry policy of execute_with_recovery
    (default: the daemon's [retry]).  breaker names a host-wide breaker the
    ops go through; circuit_breaker_config configures it (see
    CircuitBreaker); with a config and no name the breaker is private to
    this manager.  report_errors: every failed attempt is also stored with
    error.report (what the seed's error tracker did; it feeds
    get_recovery_metrics()["total_errors"]).  supabase_url/supabase_key are
    accepted for the seed's sake and ignored: forwarding is the daemon's
    [supabase] config."""

    def __init__(self, socket_path=None, *, retry_config=None, policy=None,
                 breaker=None, circuit_breaker_config=None,
                 report_errors=True, client_name="ermd_client (python)",
                 supabase_url=None, supabase_key=None):
        if supabase_url is not None or supabase_key is not None:
            warnings.warn("ermd forwards to Supabase from its own [supabase] "
                          "config; supabase_url/supabase_key are ignored",
                          UserWarning, stacklevel=2)
        self.socket_path = socket_path
        self.retry_config = retry_config
        self.policy = policy
        self.report_errors = report_errors
        self.client_name = client_name
        self._conn = None
        self._conn_lock = asyncio.Lock() if _has_loop() else None
        self._category_cache = {}
        self._workflows = {}
        self._wf_listener = None
        self._tasks = set()
        self.fallback_storage = FallbackStorage(self)
        self.circuit_breaker = None
        if circuit_breaker_config is not None or breaker is not None:
            self.circuit_breaker = CircuitBreaker(
                circuit_breaker_config, breaker, manager=self)
        self.breaker = self.circuit_breaker.name if self.circuit_breaker \
            else None

    # ---- connection --------------------------------------------------------

    async def _connection(self):
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self._conn is None or self._conn.closed:
                self._conn = await Connection(self.socket_path).open(
                    self.client_name)
                self._wf_listener = None
        return self._conn

    async def connect(self):
        conn = await self._connection()
        if self.circuit_breaker is not None:
            await self.circuit_breaker._ensure()
        try:
            await self.fallback_storage.status()
        except ErmdError:
            pass
        return conn

    async def close(self):
        for t in list(self._tasks):
            t.cancel()
        if self.circuit_breaker is not None:
            await self.circuit_breaker.close()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False

    async def call(self, method, params=None):
        """Any protocol method, for what the seed API does not cover."""
        return await (await self._connection()).call(method, params)

    @property
    def methods(self):
        return list(self._conn.methods) if self._conn else []

    # ---- classification ------------------------------------------------------

    async def classify(self, exc):
        """error.classify of an exception, an exception class or an error
        object dict → Classification(category, primary, fallback,
        retryable, matched)."""
        obj = exc if isinstance(exc, dict) else error_object(exc)
        r = await (await self._connection()).call("error.classify", obj)
        return Classification.from_reply(r)

    async def _policy_for(self, retry_config):
        """The policy object of a RetryConfig (categories of its
        retryable_exceptions classified by the daemon, once per class)."""
        if retry_config is None:
            return None
        retry_on = None
        if retry_config.retryable_exceptions:
            retry_on = []
            for cls in retry_config.retryable_exceptions:
                cat = self._category_cache.get(cls)
                if cat is None:
                    cat = str((await self.classify(cls)).category)
                    self._category_cache[cls] = cat
                if cat not in retry_on:
                    retry_on.append(cat)
        return retry_config.policy_object(retry_on)

    # ---- execute_with_recovery -------------------------------------------------

    async def execute(self, operation, operation_name, *, args=(),
                      kwargs=None, file_path=None, create_backup=False,
                      backup_paths=None, breaker=_DEFAULT, retry_config=None,
                      policy=None, deadline=None):
        """execute_with_recovery with every option, → RecoveryResult.

        op.begin (backing up file_path when create_backup, and any
        backup_paths, each only if it exists), then the operation (sync or
        async) until it succeeds (op.succeed) or the daemon's decision on a
        failure (op.fail) is not "retry"; a "retry" waits delay_ms first."""
        conn = await self._connection()
        kwargs = kwargs or {}
        params = {"operation": _cut_bytes(str(operation_name), 256)}
        bname = self.breaker if breaker is _DEFAULT else breaker
        if bname:
            params["breaker"] = bname
            if self.circuit_breaker is not None and \
                    bname == self.circuit_breaker.name:
                await self.circuit_breaker._ensure()
        rc = retry_config if retry_config is not None else \
            (None if policy is not None else self.retry_config)
        pol = await self._policy_for(rc)
        if pol is not None:
            params["policy"] = pol
        elif policy is not None or self.policy is not None:
            params["policy"] = policy if policy is not None else self.policy
        # A file that is not there yet has nothing to back up: leaving it
        # out lets an operation that creates it run (op.begin would give
        # 1006 ENOENT).  A rollback then cannot delete what the operation
        # created.
        paths = []
        wanted = [file_path] if create_backup and file_path is not None \
            else []
        for p in wanted + list(backup_paths or ()):
            p = os.path.abspath(os.fspath(p))
            if os.path.lexists(p):
                paths.append(p)
        if paths:
            params["backup"] = paths
        if deadline is not None:
            params["deadline_ms"] = int(deadline * 1000)
        report_path = os.path.abspath(os.fspath(file_path)) \
            if file_path is not None else None

        try:
            begin = await conn.call("op.begin", params)
        except CircuitBreakerOpenError as e:
            return RecoveryResult(False, error=e, op=e.data.get("op"),
                                  decision="rejected", daemon_error=e)
        except ErmdError as e:
            return RecoveryResult(False, error=e, decision="error",
                                  daemon_error=e)
        res = RecoveryResult(False, op=begin.get("op"),
                             backups=begin.get("backups", []))
        while True:
            res.attempts += 1
            try:
                value = await _maybe_await(operation(*args, **kwargs))
            except Exception as exc:        # BaseException propagates
                eobj = error_object(exc)
                rep = None
                if self.report_errors:
                    rp = dict(eobj)
                    rp.update({"operation": params["operation"],
                               "context": {"op": res.op,
                                           "attempt": res.attempts}})
                    if report_path is not None:
                        rp["path"] = report_path
                    rep = asyncio.ensure_future(
                        conn.call("error.report", rp))
                try:
                    d = await conn.call("op.fail",
                                        {"op": res.op, "error": eobj})
                except (ErmdError, ConnectionError) as e:
                    # The daemon could not decide: the failure stands.
                    # (A breaker that refuses the next attempt is not an
                    # error here: op.fail then decides something else.)
                    res.error, res.decision, res.daemon_error = \
                        exc, "error", e
                    await self._settle(rep)
                    return res
                await self._settle(rep)
                res.category = d.get("category")
                res.strategy = d.get("strategy")
                res.rolled_back.extend(d.get("rolled_back", []))
                decision = d.get("decision")
                if decision == "retry":
                    await asyncio.sleep(max(d.get("delay_ms", 0), 0) / 1000)
                    continue
                res.error, res.decision = exc, decision
                res.backend = d.get("backend")
                return res
            res.success, res.result = True, value
            try:
                s = await conn.call("op.succeed", {"op": res.op})
                res.attempts = s.get("attempts", res.attempts)
                res.recovered = bool(s.get("recovered",
                                           res.attempts > 1))
            except (ErmdError, ConnectionError) as e:
                # The operation did succeed; the record of it did not.
                res.daemon_error = e
                res.recovered = res.attempts > 1
            return res

    @staticmethod
    async def _settle(task):
        if task is None:
            return
        try:
            await task
        except (ErmdError, ConnectionError) as e:
            log.warning("ermd_client: error.report: %s", e)

    async def execute_with_recovery(self, operation, operation_name,
                                    file_path=None, create_backup=False,
                                    *args, **kwargs):
        """The seed's call → (success, result, error); args and kwargs go
        to the operation."""
        r = await self.execute(operation, operation_name, args=args,
                               kwargs=kwargs, file_path=file_path,
                               create_backup=create_backup)
        return r.as_tuple()

    # ---- execute_with_fallback -------------------------------------------------

    async def execute_with_fallback(self, operation, *args, **kwargs):
        """Run operation on the backends ermd selects, falling back down the
        list on each failure → (success, result, error).  The operation
        gets the StorageBackend (name, type, location) as its first
        argument when its signature takes one more positional argument,
        else only *args/**kwargs.  Each try is reported (storage.report);
        fallback_storage.current_storage names the backend that worked."""
        conn = await self._connection()
        exclude = []
        last = None
        loop = asyncio.get_running_loop()
        with_backend = _accepts_backend(operation, args, kwargs)
        for _ in range(64):
            try:
                r = await conn.call("storage.select", {"exclude": exclude})
            except ErmdError as e:
                if last is None:
                    last = e
                break
            backend = StorageBackend(r.get("backend"), r.get("type"),
                                     r.get("location"))
            t0 = loop.time()
            try:
                if with_backend:
                    value = await _maybe_await(
                        operation(backend, *args, **kwargs))
                else:
                    value = await _maybe_await(operation(*args, **kwargs))
            except Exception as exc:
                await self._report(conn, backend.name, False, exc,
                                   loop.time() - t0)
                exclude.append(backend.name)
                last = exc
                continue
            await self._report(conn, backend.name, True, None,
                               loop.time() - t0)
            self.fallback_storage.current_storage = backend.name
            return True, value, None
        try:
            await self.fallback_storage.status()
        except ErmdError:
            pass
        return False, None, last

    @staticmethod
    async def _report(conn, backend, ok, exc, latency):
        p = {"backend": backend, "ok": ok,
             "latency_ms": max(int(latency * 1000), 0)}
        if exc is not None:
            p["error"] = error_object(exc)
        try:
            await conn.call("storage.report", p)
        except (ErmdError, ConnectionError) as e:
            log.warning("ermd_client: storage.report: %s", e)

    # ---- backups (the seed's FileOperationRollback) ---------------------------

    async def create_backup(self, file_path, tag=None):
        """backup.create of a file beneath a daemon root → the backup."""
        p = {"path": os.path.abspath(os.fspath(file_path))}
        if tag is not None:
            p["tag"] = tag
        return await (await self._connection()).call("backup.create", p)

    async def restore_backup(self, file_path=None, backup_id=None):
        """backup.restore of the latest backup of file_path, or of one
        backup by id."""
        if (file_path is None) == (backup_id is None):
            raise TypeError("give file_path or backup_id")
        p = {"id": backup_id} if backup_id is not None else \
            {"path": os.path.abspath(os.fspath(file_path))}
        return await (await self._connection()).call("backup.restore", p)

    # ---- metrics ---------------------------------------------------------------

    async def get_recovery_metrics(self):
        """metrics.get: total_errors, successful_recoveries,
        failed_recoveries, recovery_rate, circuit_breaker_state, ..."""
        return await (await self._connection()).call("metrics.get")

    # ---- workflows ---------------------------------------------------------------

    def _step(self, i, op, wf):
        if callable(op) and not isinstance(op, dict):
            op = {"name": getattr(op, "__name__", None), "callable": op}
        if not isinstance(op, dict):
            raise TypeError("operation %d: a callable or a dict" % i)
        name = op.get("name") or "step%d" % (i + 1)
        step = {"name": name}
        fn = op.get("callable")
        action = op.get("action")
        if fn is None and callable(action):
            fn, action = action, None
        if fn is not None:
            if not callable(fn):
                raise TypeError("operation %r: callable is not callable"
                                % name)
            step["action"] = {"type": "client"}
        elif isinstance(action, dict):
            step["action"] = action
        else:
            raise TypeError("operation %r: needs a callable or an action"
                            % name)
        comp = op.get("compensate", op.get("rollback"))
        comp_fn = None
        if callable(comp) and not isinstance(comp, dict):
            comp_fn = comp
            step["compensate"] = {"type": "client"}
        elif isinstance(comp, dict):
            step["compensate"] = comp
        elif comp is not None:
            raise TypeError("operation %r: compensate must be a callable "
                            "or an action" % name)
        for k in ("after", "breaker", "timeout_ms", "idempotent"):
            if k in op:
                step[k] = op[k]
        if "timeout" in op:
            step["timeout_ms"] = int(op["timeout"] * 1000)
        if fn is not None or comp_fn is not None:
            wf.steps[name] = _ClientStep(fn, op.get("args"), op.get("kwargs"),
                                         comp_fn, op.get("rollback_args"),
                                         op.get("rollback_kwargs"))
        return step, op.get("retry")

    async def create_recovery_workflow(self, name, operations,
                                       rollback_on_failure=True, **options):
        """workflow.create (not run yet) → its id.  Each operation is a
        callable, or a dict: {"name", "callable" (run here, as a client
        step) or "action" (a daemon action dict), "compensate"/"rollback"
        (a callable or an action), "args", "kwargs", "after", "retry"
        (policy name, object or RetryConfig), "breaker", "timeout"
        (seconds) / "timeout_ms", "idempotent"}.  options: compensation,
        continue_on_compensation_error."""
        conn = await self._connection()
        wf = _Workflow(None, name)
        steps = []
        for i, op in enumerate(operations):
            step, retry = self._step(i, op, wf)
            if isinstance(retry, RetryConfig):
                retry = await self._policy_for(retry)
            if retry is not None:
                step["retry"] = retry
            steps.append(step)
        params = {"name": name, "steps": steps,
                  "rollback_on_failure": bool(rollback_on_failure),
                  "run": False}
        for k in ("compensation", "continue_on_compensation_error"):
            if k in options:
                params[k] = options.pop(k)
        if options:
            raise TypeError("unknown option(s): %s" % ", ".join(options))
        self._listen_workflows(conn)
        r = await conn.call("workflow.create", params)
        wf.id = r["id"]
        self._workflows[wf.id] = wf
        return wf.id

    def _listen_workflows(self, conn):
        if self._wf_listener is not None:
            return

        def on_event(ev):
            if ev.get("type") != "workflow.step" or "action" not in ev:
                return
            wf = self._workflows.get(ev.get("id"))
            if wf is None:
                return
            t = asyncio.ensure_future(self._client_step(conn, wf, ev))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        self._wf_listener = on_event
        conn.add_listener(on_event)

    async def _client_step(self, conn, wf, ev):
        name = ev.get("step")
        compensating = ev.get("state") == "compensating"
        cs = wf.steps.get(name)
        params = {"id": wf.id, "step": name, "ok": True}
        try:
            if cs is None:
                raise RuntimeError("no callable for step %r in this process"
                                   % name)
            if compensating:
                v = None
                if cs.compensate is not None:
                    v = await _maybe_await(cs.compensate(*cs.comp_args,
                                                         **cs.comp_kwargs))
            else:
                v = await _maybe_await(cs.fn(*cs.args, **cs.kwargs))
                wf.results[name] = v
                wf.exceptions.pop(name, None)
            out = _output(v)
            if out is not None:
                params["output"] = out
        except Exception as exc:
            if not compensating:
                wf.exceptions[name] = exc
            params["ok"] = False
            params["error"] = error_object(exc)
        try:
            await conn.call("workflow.step_result", params)
        except (ErmdError, ConnectionError) as e:
            log.warning("ermd_client: workflow.step_result %s/%s: %s",
                        wf.id, name, e)

    async def execute_recovery_workflow(self, workflow_id, timeout=None):
        """Run the workflow (its client steps here) and wait for its end →
        (success, errors): success when it succeeded; errors are
        WorkflowStepError for each failed step."""
        conn = await self._connection()
        self._listen_workflows(conn)
        try:
            await conn.call("workflow.run", {"id": workflow_id})
        except ErmdError as e:
            if e.code != CONFLICT:
                raise
        p = {"id": workflow_id}
        if timeout is not None:
            p["timeout_ms"] = int(timeout * 1000)
        final = await conn.call("workflow.wait", p)
        wf = self._workflows.get(workflow_id)
        if wf is not None:
            wf.final = final
        errors = []
        for s in final.get("steps", []):
            if s.get("state") == "failed" or \
                    s.get("state") == "compensation_failed" or \
                    (s.get("error") and s.get("state") not in
                     ("succeeded", "compensated")):
                exc = wf.exceptions.get(s["name"]) if wf else None
                errors.append(WorkflowStepError(s["name"], s.get("error"),
                                                exc))
        if not errors and final.get("state") != "succeeded" and \
                final.get("error"):
            e = final["error"]
            errors.append(WorkflowStepError(e.get("step", ""),
                                            e.get("error", e)))
        return final.get("state") == "succeeded", errors

    async def get_workflow(self, workflow_id):
        return await (await self._connection()).call(
            "workflow.get", {"id": workflow_id})

    def workflow_results(self, workflow_id):
        """What the client steps' callables returned, by step name."""
        wf = self._workflows.get(workflow_id)
        return dict(wf.results) if wf else {}

    async def cancel_recovery_workflow(self, workflow_id):
        return await (await self._connection()).call(
            "workflow.cancel", {"id": workflow_id})


def _has_loop():
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


# ---- decorator ---------------------------------------------------------------

def recovery_operation(manager, operation_name=None, file_path=None,
                       create_backup=False):
    """The seed's decorator: the function runs through
    manager.execute_with_recovery; it returns the result or raises the
    error of the last attempt."""
    def deco(fn):
        name = operation_name or getattr(fn, "__qualname__",
                                         getattr(fn, "__name__", "operation"))

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            r = await manager.execute(fn, name, args=args, kwargs=kwargs,
                                      file_path=file_path,
                                      create_backup=create_backup)
            if r.success:
                return r.result
            raise r.error
        return wrapper
    return deco
