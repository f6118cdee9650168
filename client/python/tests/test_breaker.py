import asyncio
import os
import unittest

import ermd_harness as H
from ermd_client import (CircuitBreaker, CircuitBreakerConfig,
                         CircuitBreakerOpenError, CircuitBreakerOpenException,
                         CircuitState, ErrorRecoveryManager)

# [breaker.s3]: a host's own setting that a CircuitBreaker given no config
# must leave alone.
D = H.Daemon(extra_conf="[breaker.s3]\nfailure_threshold = 2\n")
setUpModule, tearDownModule = D.start, D.stop


class ServiceError(Exception):
    pass


async def fail(exc):
    raise exc


class BreakerTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.m = ErrorRecoveryManager(D.sock)
        await self.m.__aenter__()

    async def asyncTearDown(self):
        await self.m.__aexit__(None, None, None)

    async def wait_for(self, pred, timeout=2.0):
        end = asyncio.get_running_loop().time() + timeout
        while not pred():
            if asyncio.get_running_loop().time() > end:
                self.fail("condition not met")
            await asyncio.sleep(0.01)

    async def test_opens_after_threshold_and_recovers(self):
        changes = []
        cfg = CircuitBreakerConfig(
            failure_threshold=3, recovery_timeout=60.0,
            state_change_callback=lambda old, new: changes.append((old, new)))
        b = CircuitBreaker(cfg, "py.test.cycle", manager=self.m)
        for _ in range(3):
            with self.assertRaises(ConnectionError):
                async with b.execute(fail):
                    await fail(ConnectionError("down"))
        self.assertTrue(b.config_applied)
        self.assertEqual(b.state, CircuitState.OPEN)
        ran = []
        with self.assertRaises(CircuitBreakerOpenError) as cm:
            async with b.execute(None):
                ran.append(1)
        self.assertEqual(ran, [])
        self.assertIs(CircuitBreakerOpenException, CircuitBreakerOpenError)
        self.assertEqual(cm.exception.state, "open")
        self.assertAlmostEqual(cm.exception.retry_after, 60.0, delta=1.0)
        got = await b.get()
        self.assertEqual(got["config"]["failure_threshold"], 3)
        self.assertEqual(got["config"]["recovery_timeout_ms"], 60000)

        await self.m.call("debug.advance", {"ms": 60000})
        self.assertEqual(await b.get_state(), "half_open")
        async with b.execute(None):
            pass
        self.assertEqual(b.state, "closed")
        await self.wait_for(lambda: len(changes) >= 3)
        self.assertEqual(changes, [("closed", "open"), ("open", "half_open"),
                                   ("half_open", "closed")])

    async def test_async_state_change_callback(self):
        seen = asyncio.Event()

        async def handle_state_change(old, new):
            if new == CircuitState.OPEN:
                seen.set()
        b = CircuitBreaker(CircuitBreakerConfig(
            failure_threshold=1, state_change_callback=handle_state_change),
            "py.test.async_cb", manager=self.m)
        with self.assertRaises(TimeoutError):
            async with b.execute(None):
                raise TimeoutError()
        await asyncio.wait_for(seen.wait(), 2)
        await b.reset()

    async def test_unexpected_exceptions_do_not_count(self):
        cfg = CircuitBreakerConfig(failure_threshold=2,
                                   expected_exception_types=(ServiceError,
                                                             ConnectionError))
        b = CircuitBreaker(cfg, "py.test.expected", manager=self.m)
        for _ in range(5):
            with self.assertRaises(ValueError):
                async with b.execute(None):
                    raise ValueError("a bug, not an outage")
        self.assertEqual(await b.get_state(), "closed")
        for _ in range(2):
            with self.assertRaises(ServiceError):
                async with b.execute(None):
                    raise ServiceError("outage")
        self.assertEqual(await b.get_state(), "open")

    async def test_call_helper(self):
        b = CircuitBreaker(CircuitBreakerConfig(), "py.test.call",
                           manager=self.m)
        self.assertEqual(await b.call(lambda x: x + 1, 1), 2)

        async def af():
            return "a"
        self.assertEqual(await b.call(af), "a")
        got = await b.get()
        self.assertEqual(got["window"]["calls"], 2)
        self.assertEqual(got["state"], "closed")

    async def test_standalone_breaker_private_name(self):
        old = os.environ.get("ERMD_SOCKET")
        os.environ["ERMD_SOCKET"] = D.sock
        try:
            config = CircuitBreakerConfig(failure_threshold=5,
                                          recovery_timeout=60.0)
            circuit_breaker = CircuitBreaker(config)
            self.assertTrue(circuit_breaker.name.startswith("python."))

            async def unreliable_service():
                return "response"
            async with circuit_breaker.execute(unreliable_service):
                response = await unreliable_service()
            self.assertEqual(response, "response")
            self.assertEqual(circuit_breaker.state, "closed")
            await circuit_breaker.close()
            async with CircuitBreaker(config) as b2:
                self.assertNotEqual(b2.name, circuit_breaker.name)
                self.assertEqual(await b2.call(lambda: 5), 5)
        finally:
            if old is None:
                del os.environ["ERMD_SOCKET"]
            else:
                os.environ["ERMD_SOCKET"] = old

    async def test_private_breaker_is_reset_on_close(self):
        b = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1),
                           manager=self.m)
        with self.assertRaises(ConnectionError):
            async with b.execute(None):
                raise ConnectionError()
        self.assertEqual(b.state, "open")
        await b.close()
        self.assertEqual(D.call("breaker.get", {"name": b.name})["state"],
                         "closed")

    async def test_no_config_keeps_the_hosts_breaker_config(self):
        async with CircuitBreaker(name="s3", socket_path=D.sock) as b:
            got = await b.get()
            self.assertEqual(got["config"]["failure_threshold"], 2)
            self.assertIsNone(b.config_applied)
        self.assertEqual(D.call("breaker.get", {"name": "s3"})
                         ["config"]["failure_threshold"], 2)
        # The manager's breaker= without a config: the same.
        async with ErrorRecoveryManager(D.sock, breaker="s3") as m:
            self.assertIsNone(m.circuit_breaker.config_applied)
        self.assertEqual(D.call("breaker.get", {"name": "s3"})
                         ["config"]["failure_threshold"], 2)

    async def test_metrics_show_breaker(self):
        b = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1),
                           "py.test.metrics", manager=self.m)
        with self.assertRaises(ConnectionError):
            async with b.execute(None):
                raise ConnectionError()
        metrics = await self.m.get_recovery_metrics()
        self.assertEqual(metrics["circuit_breakers"]["py.test.metrics"],
                         "open")
        self.assertEqual(metrics["circuit_breaker_state"], "open")
        await b.reset()


class NonAdminTest(unittest.TestCase):
    """A peer that may not call breaker.configure still gets a breaker (the
    daemon's [breaker] defaults apply)."""

    def test_configure_refused(self):
        if os.getuid() != 0:
            self.skipTest("needs root to run a child as nobody")
        import subprocess
        import sys
        import shutil
        d = H.Daemon(extra_conf="[daemon]\nsocket_mode = 0666\n").start()
        try:
            os.chmod(d.dir, 0o755)
            # The checkout may sit where nobody cannot read (a 0700 temp
            # dir): give the child its own readable copy of the package.
            pydir = os.path.join(d.dir, "py")
            shutil.copytree(os.path.join(H.PKG, "ermd_client"),
                            os.path.join(pydir, "ermd_client"))
            for root, dirs, files in os.walk(pydir):
                os.chmod(root, 0o755)
                for f in files:
                    os.chmod(os.path.join(root, f), 0o644)
            env = d.env()
            env["PYTHONPATH"] = pydir
            code = (
                "import asyncio\n"
                "from ermd_client import *\n"
                "async def main():\n"
                "  b = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1))\n"
                "  try:\n"
                "    print(await b.call(lambda: 'ok'), b.config_applied,\n"
                "          (await b.get())['config']['failure_threshold'])\n"
                "  finally:\n"
                "    await b.close()\n"
                "asyncio.run(main())\n")
            out = None
            # nobody may not be able to run this interpreter (a pyenv one
            # under /root): then Debian's.
            for exe in (sys.executable, "/usr/bin/python3"):
                try:
                    out = subprocess.run(
                        [exe, "-c", code], env=env, user="nobody",
                        capture_output=True, text=True, timeout=20)
                    break
                except PermissionError:
                    continue
            if out is None:
                self.skipTest("no Python that nobody may run")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout.split(), ["ok", "False", "5"])
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
