import asyncio
import os
import unittest

import ermd_harness as H
from ermd_client import (Connection, DaemonConnectionError, ErmdError,
                         ErrorRecoveryManager, socket_path)

D = H.Daemon()
setUpModule, tearDownModule = D.start, D.stop


class ConnectionTest(unittest.IsolatedAsyncioTestCase):
    async def test_hello_and_methods(self):
        c = await Connection(D.sock).open()
        try:
            self.assertEqual(c.server["server"], "ermd")
            self.assertEqual(c.server["protocol"], 1)
            self.assertIn("op.begin", c.methods)
            self.assertTrue(c.has("metrics.get"))
            self.assertGreater(c.max_frame, 0)
        finally:
            await c.close()

    async def test_socket_from_environment(self):
        old = os.environ.get("ERMD_SOCKET")
        os.environ["ERMD_SOCKET"] = D.sock
        try:
            self.assertEqual(socket_path(), D.sock)
            self.assertEqual(socket_path("/x"), "/x")
            async with ErrorRecoveryManager() as m:
                r = await m.call("ping")
                self.assertTrue(r["pong"])
        finally:
            if old is None:
                del os.environ["ERMD_SOCKET"]
            else:
                os.environ["ERMD_SOCKET"] = old

    def test_default_socket(self):
        old = os.environ.pop("ERMD_SOCKET", None)
        try:
            self.assertEqual(socket_path(), "/run/ermd/ermd.sock")
        finally:
            if old is not None:
                os.environ["ERMD_SOCKET"] = old

    async def test_no_daemon(self):
        with self.assertRaises(DaemonConnectionError):
            await Connection(os.path.join(D.dir, "nope.sock")).open()
        with self.assertRaises(ConnectionError):
            async with ErrorRecoveryManager(os.path.join(D.dir, "nope")):
                pass

    async def test_pipelined_calls(self):
        c = await Connection(D.sock).open()
        try:
            rs = await asyncio.gather(*[c.call("ping") for _ in range(200)])
            self.assertTrue(all(r["pong"] for r in rs))
        finally:
            await c.close()

    async def test_error_reply(self):
        c = await Connection(D.sock).open()
        try:
            with self.assertRaises(ErmdError) as cm:
                await c.call("no.such.method")
            self.assertEqual(cm.exception.code, -32601)
            with self.assertRaises(ErmdError) as cm:
                await c.call("ping", {"bogus": 1})
            self.assertEqual(cm.exception.code, -32602)
            self.assertEqual(cm.exception.data.get("field"), "bogus")
            # the connection stays usable
            self.assertTrue((await c.call("ping"))["pong"])
        finally:
            await c.close()

    async def test_frame_too_large_is_refused_locally(self):
        c = await Connection(D.sock).open()
        try:
            with self.assertRaises(ValueError):
                await c.call("error.classify",
                             {"message": "x" * (c.max_frame + 10)})
            self.assertTrue((await c.call("ping"))["pong"])
        finally:
            await c.close()

    async def test_calls_after_close_fail(self):
        c = await Connection(D.sock).open()
        await c.close()
        with self.assertRaises(ConnectionError):
            await c.call("ping")

    async def test_daemon_side_close_fails_pending(self):
        c = await Connection(D.sock).open()
        try:
            # A zero-length frame: the daemon answers 1005 (id null) and
            # closes; the client fails what is in flight and later calls.
            c._writer.write(b"\0\0\0\0")
            await asyncio.sleep(0.2)
            with self.assertRaises((ErmdError, ConnectionError)):
                await c.call("ping")
        finally:
            await c.close()

    async def test_daemon_gone_during_an_operation(self):
        d2 = H.Daemon().start()
        try:
            async with ErrorRecoveryManager(d2.sock) as m:
                def op():
                    d2.stop()
                    raise ConnectionError("lost it")
                r = await m.execute(op, "gone")
                self.assertFalse(r.success)
                self.assertEqual(str(r.error), "lost it")
                self.assertEqual(r.decision, "error")
                self.assertIsInstance(r.daemon_error, ConnectionError)
                with self.assertRaises(ConnectionError):
                    await m.execute_with_recovery(lambda: 1, "after")
        finally:
            d2.stop()


if __name__ == "__main__":
    unittest.main()
