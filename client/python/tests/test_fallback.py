import os
import unittest

import ermd_harness as H
from ermd_client import ErmdError, ErrorRecoveryManager, StorageBackend

D = H.Daemon()
setUpModule, tearDownModule = D.start, D.stop


class FallbackTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.m = ErrorRecoveryManager(D.sock)
        await self.m.__aenter__()
        # Each test starts with both backends' runs of failures ended.
        for b in ("primary", "secondary"):
            await self.m.fallback_storage.report(b, True)

    async def asyncTearDown(self):
        await self.m.__aexit__(None, None, None)

    async def test_seed_name_fallback_storage_manager(self):
        import ermd_client
        from ermd_client import FallbackStorage, FallbackStorageManager
        self.assertIs(FallbackStorageManager, FallbackStorage)
        self.assertIn("FallbackStorageManager", ermd_client.__all__)
        self.assertIsInstance(self.m.fallback_storage, FallbackStorageManager)

    async def test_current_storage_at_start(self):
        self.assertEqual(self.m.fallback_storage.current_storage, "primary")
        self.assertEqual([b["name"] for b in self.m.fallback_storage.backends],
                         ["primary", "secondary"])

    async def test_falls_back_to_secondary(self):
        tried = []

        async def storage_operation(backend):
            self.assertIsInstance(backend, StorageBackend)
            tried.append(backend.name)
            if backend.name == "primary":
                raise ConnectionError("primary unreachable")
            with open(os.path.join(backend.location, "obj"), "w") as f:
                f.write("x")
            return backend.location
        ok, result, err = await self.m.execute_with_fallback(
            storage_operation)
        self.assertEqual((ok, result, err), (True, D.b2, None))
        self.assertEqual(tried, ["primary", "secondary"])
        self.assertEqual(self.m.fallback_storage.current_storage, "secondary")
        st = await self.m.fallback_storage.status()
        prim = [b for b in st["backends"] if b["name"] == "primary"][0]
        self.assertEqual(prim["consecutive_failures"], 1)
        self.assertIn("primary unreachable", prim.get("last_error", ""))

    async def test_first_backend_works(self):
        ok, result, err = await self.m.execute_with_fallback(
            lambda b, x: (b.name, x), 7)
        self.assertEqual((ok, result, err), (True, ("primary", 7), None))
        self.assertEqual(self.m.fallback_storage.current_storage, "primary")

    async def test_operation_without_backend_argument(self):
        calls = []

        def op():
            calls.append(1)
            if len(calls) == 1:
                raise OSError(5, "I/O error")
            return "stored"
        ok, result, err = await self.m.execute_with_fallback(op)
        self.assertEqual((ok, result, err), (True, "stored", None))
        self.assertEqual(self.m.fallback_storage.current_storage, "secondary")

    async def test_every_backend_fails(self):
        async def op(backend):
            raise ConnectionError("down: " + backend.name)
        ok, result, err = await self.m.execute_with_fallback(op)
        self.assertFalse(ok)
        self.assertIsNone(result)
        self.assertIsInstance(err, ConnectionError)
        self.assertEqual(str(err), "down: secondary")

    async def test_put_and_get(self):
        src = os.path.join(D.dir, "src.txt")
        with open(src, "w") as f:
            f.write("payload")
        r = await self.m.fallback_storage.put("k1", src)
        self.assertEqual(r["backend"], "primary")
        dst = os.path.join(D.dir, "dst.txt")
        await self.m.fallback_storage.get("k1", dst)
        with open(dst) as f:
            self.assertEqual(f.read(), "payload")
        with self.assertRaises(ErmdError) as cm:
            await self.m.fallback_storage.get("missing", dst)
        self.assertEqual(cm.exception.code, 1001)


if __name__ == "__main__":
    unittest.main()
