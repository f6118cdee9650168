import errno
import json
import subprocess
import unittest

import ermd_harness as H
from ermd_client import ErrorRecoveryManager, ErrorType, error_object
from ermd_client._errors import exception_name

D = H.Daemon()
setUpModule, tearDownModule = D.start, D.stop


class ServiceDown(ConnectionError):
    pass


class DiskTrouble(OSError):
    pass


class Plain(Exception):
    pass


class HTTPError(Exception):
    def __init__(self, status, retry_after=None):
        super().__init__("HTTP %d" % status)
        self.status_code = status
        self.retry_after = retry_after


class Categorised(Exception):
    erm_category = ErrorType.QUOTA_EXCEEDED


class MappingTest(unittest.TestCase):
    def test_type_name_and_message(self):
        self.assertEqual(error_object(ValueError("bad")),
                         {"exception": "ValueError", "message": "bad"})
        self.assertEqual(error_object(KeyError()), {"exception": "KeyError"})

    def test_errno(self):
        o = error_object(OSError(errno.ENOSPC, "No space left on device"))
        self.assertEqual(o["exception"], "OSError")
        self.assertEqual(o["errno"], errno.ENOSPC)
        o = error_object(ConnectionResetError(errno.ECONNRESET, "reset"))
        self.assertEqual(o["exception"], "ConnectionResetError")
        self.assertEqual(o["errno"], errno.ECONNRESET)
        self.assertNotIn("errno", error_object(ConnectionResetError()))

    def test_subclasses_use_known_ancestor(self):
        self.assertEqual(exception_name(ServiceDown), "ConnectionError")
        self.assertEqual(exception_name(DiskTrouble), "OSError")
        self.assertEqual(exception_name(Plain), "Plain")
        self.assertEqual(exception_name(json.JSONDecodeError),
                         "JSONDecodeError")
        self.assertEqual(exception_name(ConnectionRefusedError),
                         "ConnectionRefusedError")

    def test_http_status_retry_after_category(self):
        o = error_object(HTTPError(503, retry_after=2))
        self.assertEqual(o["http_status"], 503)
        self.assertEqual(o["retry_after_ms"], 2000)
        self.assertEqual(error_object(Categorised())["category"],
                         "QUOTA_EXCEEDED")

    def test_subprocess(self):
        o = error_object(subprocess.CalledProcessError(124, ["x"]))
        self.assertEqual(o["exit_code"], 124)
        o = error_object(subprocess.CalledProcessError(-9, ["x"]))
        self.assertEqual(o["signal"], 9)

    def test_class_and_long_message(self):
        self.assertEqual(error_object(TimeoutError),
                         {"exception": "TimeoutError"})
        o = error_object(ValueError("é" * 5000))
        self.assertLessEqual(len(o["message"].encode()), 4096)


class ClassifyTest(unittest.IsolatedAsyncioTestCase):
    async def test_daemon_classifies_mapped_exceptions(self):
        cases = [
            (TimeoutError(), "TIMEOUT_ERROR"),
            (ConnectionResetError(), "NETWORK_ERROR"),
            (ServiceDown("down"), "NETWORK_ERROR"),
            (FileNotFoundError(errno.ENOENT, "gone"), "FILE_NOT_FOUND"),
            (PermissionError(errno.EACCES, "no"), "PERMISSION_ERROR"),
            (OSError(errno.ENOSPC, "full"), "STORAGE_ERROR"),
            (DiskTrouble("hm"), "STORAGE_ERROR"),
            (json.JSONDecodeError("x", "doc", 0), "CORRUPTED_DATA"),
            (ValueError("checksum mismatch"), "CORRUPTED_DATA"),
            (HTTPError(429), "RATE_LIMIT_ERROR"),
            (Categorised(), "QUOTA_EXCEEDED"),
            (subprocess.CalledProcessError(124, ["x"]), "TIMEOUT_ERROR"),
            (KeyError("k"), "SYSTEM_ERROR"),
        ]
        async with ErrorRecoveryManager(D.sock) as m:
            for exc, cat in cases:
                c = await m.classify(exc)
                self.assertEqual(c.category, cat, repr(exc))
                self.assertEqual(str(c.category), cat)
            c = await m.classify(ConnectionError)
            self.assertEqual(c.category, ErrorType.NETWORK_ERROR)
            self.assertEqual(c.primary, "retry_with_backoff")
            self.assertEqual(c.fallback, "fallback_storage")
            self.assertTrue(c.retryable)
            self.assertEqual(c.matched, "exception:ConnectionError")
            c = await m.classify({"http_status": 401})
            self.assertEqual(c.category, "AUTHENTICATION_ERROR")
            self.assertFalse(c.retryable)


if __name__ == "__main__":
    unittest.main()
