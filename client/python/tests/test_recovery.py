import asyncio
import errno
import os
import unittest

import ermd_harness as H
from ermd_client import (CircuitBreakerConfig, CircuitBreakerOpenError,
                         ErmdError, ErrorRecoveryManager, RetryConfig,
                         recovery_operation)

D = H.Daemon()
setUpModule, tearDownModule = D.start, D.stop
FAST = RetryConfig(max_attempts=3, base_delay=0.01, max_delay=0.05,
                   backoff_factor=2.0, jitter=False)


class Flaky:
    """Fails n times with exc, then returns value."""

    def __init__(self, n, exc, value="done"):
        self.n, self.exc, self.value, self.calls = n, exc, value, 0

    async def __call__(self, *args, **kwargs):
        self.calls += 1
        self.args, self.kwargs = args, kwargs
        if self.calls <= self.n:
            raise self.exc
        return self.value


class RecoveryTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.m = ErrorRecoveryManager(D.sock, retry_config=FAST)
        await self.m.__aenter__()

    async def asyncTearDown(self):
        await self.m.__aexit__(None, None, None)

    async def op(self, op_id):
        return await self.m.call("op.get", {"op": op_id})

    async def test_success_first_try(self):
        fn = Flaky(0, None, {"n": 1})
        ok, result, err = await self.m.execute_with_recovery(fn, "first")
        self.assertEqual((ok, result, err), (True, {"n": 1}, None))
        self.assertEqual(fn.calls, 1)

    async def test_args_and_kwargs_reach_the_operation(self):
        fn = Flaky(0, None)
        ok, _, _ = await self.m.execute_with_recovery(
            fn, "args", None, False, 1, 2, key="v")
        self.assertTrue(ok)
        self.assertEqual(fn.args, (1, 2))
        self.assertEqual(fn.kwargs, {"key": "v"})

    async def test_sync_operation(self):
        calls = []

        def work(x):
            calls.append(x)
            if len(calls) < 2:
                raise ConnectionResetError(errno.ECONNRESET, "reset")
            return x * 2
        ok, result, err = await self.m.execute_with_recovery(
            work, "sync", None, False, 21)
        self.assertEqual((ok, result, err), (True, 42, None))
        self.assertEqual(len(calls), 2)

    async def test_retry_then_success_is_a_recovery(self):
        before = await self.m.get_recovery_metrics()
        fn = Flaky(2, ConnectionError("flap"))
        r = await self.m.execute(fn, "flap")
        self.assertTrue(r.success)
        self.assertEqual(r.attempts, 3)
        self.assertTrue(r.recovered)
        got = await self.op(r.op)
        self.assertEqual(got["state"], "succeeded")
        self.assertEqual(got["attempts"], 3)
        self.assertEqual([e["category"] for e in got["errors"]],
                         ["NETWORK_ERROR"] * 2)
        after = await self.m.get_recovery_metrics()
        self.assertEqual(after["successful_recoveries"],
                         before["successful_recoveries"] + 1)
        # report_errors: each failed attempt is a stored error
        self.assertEqual(after["total_errors"], before["total_errors"] + 2)

    async def test_exhausted(self):
        fn = Flaky(10, TimeoutError("slow"))
        r = await self.m.execute(fn, "exhausted")
        self.assertFalse(r.success)
        self.assertIsInstance(r.error, TimeoutError)
        self.assertEqual(fn.calls, 3)
        self.assertEqual(r.category, "TIMEOUT_ERROR")
        self.assertEqual(r.decision, "escalate")
        self.assertEqual((await self.op(r.op))["state"], "failed")

    async def test_not_retryable(self):
        fn = Flaky(10, PermissionError(errno.EACCES, "denied"))
        ok, result, err = await self.m.execute_with_recovery(fn, "perm")
        self.assertFalse(ok)
        self.assertIsNone(result)
        self.assertIsInstance(err, PermissionError)
        self.assertEqual(fn.calls, 1)

    async def test_retryable_exceptions_become_retry_on(self):
        rc = RetryConfig(max_attempts=4, base_delay=0.01, jitter=False,
                         retryable_exceptions=(TimeoutError,))
        pol = await self.m._policy_for(rc)
        self.assertEqual(pol["retry_on"], ["TIMEOUT_ERROR"])
        self.assertEqual(pol["base_delay_ms"], 10)
        self.assertEqual(pol["max_delay_ms"], 60000)
        self.assertEqual(pol["jitter"], "none")
        self.assertEqual(pol["factor"], 2.0)
        # a ConnectionError is now not retried...
        fn = Flaky(10, ConnectionError("x"))
        r = await self.m.execute(fn, "retry_on", retry_config=rc)
        self.assertFalse(r.success)
        self.assertEqual(fn.calls, 1)
        # ...and a TimeoutError is, up to max_attempts
        fn = Flaky(10, TimeoutError("x"))
        r = await self.m.execute(fn, "retry_on", retry_config=rc)
        self.assertEqual(fn.calls, 4)

    async def test_retry_delays_follow_the_policy(self):
        rc = RetryConfig(max_attempts=3, base_delay=0.2, max_delay=1.0,
                         backoff_factor=2.0, jitter=False)
        fn = Flaky(2, ConnectionError("x"))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = await self.m.execute(fn, "delays", retry_config=rc)
        took = loop.time() - t0
        self.assertTrue(r.success)
        self.assertGreaterEqual(took, 0.6 - 0.02)     # 0.2 + 0.4
        self.assertLess(took, 3.0)

    async def test_backup_and_rollback(self):
        path = os.path.join(D.root, "data.txt")
        with open(path, "w") as f:
            f.write("original")

        def clobber():
            with open(path, "w") as f:
                f.write("half-written")
            raise ValueError("corrupt record")
        r = await self.m.execute(clobber, "rollback", file_path=path,
                                 create_backup=True)
        self.assertFalse(r.success)
        self.assertEqual(r.decision, "rollback")
        self.assertEqual(r.category, "CORRUPTED_DATA")
        self.assertEqual([b["path"] for b in r.rolled_back], [path])
        self.assertEqual(len(r.backups), 1)
        with open(path) as f:
            self.assertEqual(f.read(), "original")

    async def test_backup_seed_call(self):
        path = os.path.join(D.root, "seed.txt")
        with open(path, "w") as f:
            f.write("v1")
        ok, result, err = await self.m.execute_with_recovery(
            Flaky(0, None, "fine"), "seed_backup", path, create_backup=True)
        self.assertEqual((ok, result, err), (True, "fine", None))
        lst = await self.m.call("backup.list", {"path": path})
        self.assertEqual(len(lst["backups"]), 1)

    async def test_backup_of_a_file_not_there_yet(self):
        path = os.path.join(D.root, "new.txt")
        extra = os.path.join(D.root, "new-extra.txt")
        old = os.path.join(D.root, "old-extra.txt")
        with open(old, "w") as f:
            f.write("kept")

        def create():
            with open(path, "w") as f:
                f.write("created")
            return "made"
        ok, result, err = await self.m.execute_with_recovery(
            create, "create_file", path, create_backup=True)
        self.assertEqual((ok, result, err), (True, "made", None))
        with open(path) as f:
            self.assertEqual(f.read(), "created")
        # backup_paths too: the missing one is left out, the other kept.
        r = await self.m.execute(Flaky(0, None), "create_more",
                                 backup_paths=[extra, old])
        self.assertTrue(r.success, r.daemon_error)
        self.assertEqual([b["path"] for b in r.backups], [old])

    async def test_create_and_restore_backup(self):
        path = os.path.join(D.root, "manual.txt")
        with open(path, "w") as f:
            f.write("one")
        b = await self.m.create_backup(path, tag="t")
        with open(path, "w") as f:
            f.write("two")
        r = await self.m.restore_backup(path)
        self.assertEqual(r["id"], b["id"])
        with open(path) as f:
            self.assertEqual(f.read(), "one")
        r = await self.m.restore_backup(backup_id=b["id"])
        self.assertTrue(r["restored"])
        with self.assertRaises(TypeError):
            await self.m.restore_backup()

    async def test_backup_outside_roots(self):
        fn = Flaky(0, None)
        path = os.path.join(D.dir, "elsewhere.txt")
        with open(path, "w") as f:      # exists: it is to be backed up
            f.write("x")
        ok, result, err = await self.m.execute_with_recovery(
            fn, "outside", path, create_backup=True)
        self.assertFalse(ok)
        self.assertIsInstance(err, ErmdError)
        self.assertEqual(err.code, 1002)
        self.assertEqual(fn.calls, 0)

    async def test_report_errors_off(self):
        m = ErrorRecoveryManager(D.sock, retry_config=FAST,
                                 report_errors=False)
        async with m:
            before = (await m.get_recovery_metrics())["total_errors"]
            r = await m.execute(Flaky(1, ConnectionError("x")), "quiet")
            self.assertTrue(r.success)
            after = (await m.get_recovery_metrics())["total_errors"]
        self.assertEqual(before, after)

    async def test_error_report_record(self):
        path = os.path.join(D.root, "rep.txt")
        r = await self.m.execute(Flaky(1, ConnectionError("link down")),
                                 "reported_op", file_path=path)
        self.assertTrue(r.success)
        lst = await self.m.call("error.list", {"operation": "reported_op"})
        self.assertEqual(len(lst["errors"]), 1)
        e = lst["errors"][0]
        self.assertEqual(e["category"], "NETWORK_ERROR")
        self.assertEqual(e["message"], "link down")
        self.assertEqual(e["path"], path)
        self.assertEqual(e["context"], {"op": r.op, "attempt": 1})

    async def test_breaker_rejects(self):
        cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60)
        async with ErrorRecoveryManager(
                D.sock, retry_config=FAST, breaker="py.test.ops",
                circuit_breaker_config=cfg) as m:
            r = await m.execute(Flaky(10, PermissionError("no")), "b1")
            self.assertFalse(r.success)
            fn = Flaky(0, None)
            ok, result, err = await m.execute_with_recovery(fn, "b2")
            self.assertFalse(ok)
            self.assertIsInstance(err, CircuitBreakerOpenError)
            self.assertEqual(err.breaker, "py.test.ops")
            self.assertEqual(fn.calls, 0)
            metrics = await m.get_recovery_metrics()
            self.assertEqual(metrics["circuit_breaker_state"], "open")
            await m.circuit_breaker.reset()

    async def test_cancellation_propagates(self):
        async def forever():
            await asyncio.sleep(30)
        t = asyncio.ensure_future(self.m.execute_with_recovery(forever, "c"))
        await asyncio.sleep(0.05)
        t.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await t

    async def test_decorator(self):
        calls = []

        @recovery_operation(self.m)
        async def decorated_function(data: str):
            calls.append(data)
            if len(calls) == 1:
                raise ConnectionResetError("once")
            return data.upper()
        self.assertEqual(await decorated_function("test data"), "TEST DATA")
        self.assertEqual(decorated_function.__name__, "decorated_function")

        @recovery_operation(self.m, "always_fails")
        def sync_fail():
            raise PermissionError("nope")
        with self.assertRaises(PermissionError):
            await sync_fail()
        lst = await self.m.call("error.list", {"operation": "always_fails"})
        self.assertEqual(len(lst["errors"]), 1)


if __name__ == "__main__":
    unittest.main()
