"""Python exceptions as the protocol's error objects.

An exception becomes ``{"exception": <type name>, "message": str(exc)}``
plus what it carries that the daemon classifies better:

- ``errno``: ``OSError.errno`` (a number; the daemon knows the names);
- ``http_status``: an int 100-599 in ``exc.status_code``, ``exc.status``
  or ``exc.response.status_code`` (requests, aiohttp, httpx);
- ``exit_code`` / ``signal``: ``subprocess.CalledProcessError.returncode``;
- ``retry_after_ms``: ``exc.retry_after`` in seconds, when a number;
- ``category``: ``exc.erm_category`` (an ErrorType or its string), for
  code that knows best.

The type name is the exception's own name when the daemon knows it, else
the nearest ancestor the daemon knows (a ``class ServiceDown(ConnectionError)``
is sent as ``ConnectionError``; a subclass of ``OSError`` and nothing better
as ``OSError``, the daemon's weakest exception match), else the own name.
"""

import enum
import errno as _errno
import subprocess


class ErrorType(str, enum.Enum):
    """The ten categories (the seed's ErrorType; values are the wire's)."""
    NETWORK_ERROR = "NETWORK_ERROR"
    STORAGE_ERROR = "STORAGE_ERROR"
    AUTHENTICATION_ERROR = "AUTHENTICATION_ERROR"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    FILE_NOT_FOUND = "FILE_NOT_FOUND"
    CORRUPTED_DATA = "CORRUPTED_DATA"
    TIMEOUT_ERROR = "TIMEOUT_ERROR"
    RATE_LIMIT_ERROR = "RATE_LIMIT_ERROR"
    PERMISSION_ERROR = "PERMISSION_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"

    def __str__(self):
        return self.value


class RecoveryStrategy(str, enum.Enum):
    RETRY_WITH_BACKOFF = "retry_with_backoff"
    RETRY = "retry"
    FALLBACK_STORAGE = "fallback_storage"
    ROLLBACK = "rollback"
    ESCALATE = "escalate"
    SKIP_AND_LOG = "skip_and_log"

    def __str__(self):
        return self.value


# The exception names ermd's classifier knows (daemon/classify.c); a
# newer daemon may know more, which only matters for subclasses.
KNOWN_EXCEPTIONS = frozenset((
    "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
    "ConnectionAbortedError", "BrokenPipeError", "TimeoutError",
    "AuthenticationError", "PermissionError", "FileNotFoundError",
    "UnicodeDecodeError", "JSONDecodeError",
))
_OSERROR_NAMES = ("OSError", "IOError", "EnvironmentError")

MAX_MESSAGE = 4096
MAX_EXCEPTION = 128


def _cut(s, limit):
    b = s.encode("utf-8", "replace")
    if len(b) <= limit:
        return s
    return b[:limit].decode("utf-8", "ignore")


def exception_name(cls):
    """The type name sent for exception class cls."""
    mro = [c for c in cls.__mro__ if c not in (BaseException, Exception,
                                                 object)]
    if not mro:
        return cls.__name__
    if mro[0].__name__ in KNOWN_EXCEPTIONS:
        return mro[0].__name__
    for c in mro[1:]:
        if c.__name__ in KNOWN_EXCEPTIONS:
            return c.__name__
    for c in mro[1:]:
        if c.__name__ in _OSERROR_NAMES:
            return "OSError"
    return cls.__name__


def _status(exc):
    for attr in ("status_code", "status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599:
            return v
    resp = getattr(exc, "response", None)
    v = getattr(resp, "status_code", None) if resp is not None else None
    if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599:
        return v
    return None


def error_object(exc):
    """The protocol error object for an exception (or an exception class)."""
    if isinstance(exc, type):
        return {"exception": _cut(exception_name(exc), MAX_EXCEPTION)}
    obj = {"exception": _cut(exception_name(type(exc)), MAX_EXCEPTION)}
    cat = getattr(exc, "erm_category", None)
    if cat is not None:
        obj["category"] = str(cat.value if isinstance(cat, enum.Enum)
                              else cat)
    if isinstance(exc, OSError) and isinstance(exc.errno, int) and \
            1 <= exc.errno <= 4095:
        obj["errno"] = exc.errno
    status = _status(exc)
    if status is not None:
        obj["http_status"] = status
    if isinstance(exc, subprocess.CalledProcessError) and \
            isinstance(exc.returncode, int):
        rc = exc.returncode
        if 1 <= rc <= 255:
            obj["exit_code"] = rc
        elif -64 <= rc <= -1:
            obj["signal"] = -rc
    ra = getattr(exc, "retry_after", None)
    if isinstance(ra, (int, float)) and not isinstance(ra, bool) and ra > 0:
        obj["retry_after_ms"] = int(ra * 1000)
    msg = str(exc)
    if isinstance(exc, OSError) and exc.strerror and exc.errno and \
            not msg:
        msg = exc.strerror
    if msg:
        obj["message"] = _cut(msg, MAX_MESSAGE)
    return obj


def errno_name(n):
    return _errno.errorcode.get(n, str(n))
