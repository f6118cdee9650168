import asyncio
import os
import unittest

import ermd_harness as H
from ermd_client import ErrorRecoveryManager, RetryConfig, WorkflowStepError

D = None
HAVE = False


def setUpModule():
    global D, HAVE
    D = H.Daemon().start()
    HAVE = "workflow.create" in D.call("hello")["methods"]


def tearDownModule():
    D.stop()


class WorkflowTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        if not HAVE:
            self.skipTest("this ermd has no workflow.create (workflows not "
                          "built in yet)")
        self.m = ErrorRecoveryManager(D.sock)
        await self.m.__aenter__()

    async def asyncTearDown(self):
        await self.m.__aexit__(None, None, None)

    async def test_seed_example(self):
        log = []

        async def prepare_data():
            log.append("prepare")
            return {"rows": 3}

        def process_data():
            log.append("process")
            return [1, 2, 3]

        async def save_results():
            await asyncio.sleep(0.01)
            log.append("save")

        operations = [
            {"name": "prepare", "callable": prepare_data},
            {"name": "process", "callable": process_data},
            {"name": "save", "callable": save_results},
        ]
        wid = await self.m.create_recovery_workflow(
            "data_workflow", operations, rollback_on_failure=True)
        self.assertEqual((await self.m.get_workflow(wid))["state"], "pending")
        success, errors = await self.m.execute_recovery_workflow(wid)
        self.assertTrue(success)
        self.assertEqual(errors, [])
        self.assertEqual(log, ["prepare", "process", "save"])
        wf = await self.m.get_workflow(wid)
        self.assertEqual(wf["state"], "succeeded")
        out = {s["name"]: s.get("output") for s in wf["steps"]}
        self.assertEqual(out["prepare"], {"rows": 3})
        self.assertEqual(out["process"], {"result": [1, 2, 3]})
        self.assertIsNone(out["save"])
        self.assertEqual(self.m.workflow_results(wid)["process"], [1, 2, 3])

    async def test_daemon_actions_and_args(self):
        path = os.path.join(D.root, "wf-written.txt")
        seen = []

        def read(p, mode="r"):
            with open(p, mode) as f:
                seen.append(f.read())
        wid = await self.m.create_recovery_workflow("mixed", [
            {"name": "write", "action": {"type": "write", "path": path,
                                         "content": "from ermd"}},
            {"name": "read", "callable": read, "args": [path],
             "kwargs": {"mode": "r"}},
        ])
        success, errors = await self.m.execute_recovery_workflow(wid)
        self.assertTrue(success, errors)
        self.assertEqual(seen, ["from ermd"])

    async def test_failure_compensates(self):
        undone = []
        path = os.path.join(D.root, "wf-comp.txt")

        async def boom():
            raise ConnectionRefusedError("service refused")
        wid = await self.m.create_recovery_workflow("comp", [
            {"name": "one", "callable": lambda: "1",
             "rollback": lambda: undone.append("one")},
            {"name": "two", "action": {"type": "write", "path": path,
                                       "content": "x"},
             "compensate": {"type": "delete", "path": path}},
            {"name": "three", "callable": boom},
            {"name": "four", "callable": lambda: undone.append("never")},
        ], rollback_on_failure=True)
        success, errors = await self.m.execute_recovery_workflow(wid)
        self.assertFalse(success)
        self.assertEqual(undone, ["one"])
        self.assertFalse(os.path.exists(path))
        self.assertEqual(len(errors), 1)
        e = errors[0]
        self.assertIsInstance(e, WorkflowStepError)
        self.assertEqual(e.step, "three")
        self.assertIsInstance(e.exception, ConnectionRefusedError)
        self.assertEqual(e.error.get("category"), "NETWORK_ERROR")
        wf = await self.m.get_workflow(wid)
        self.assertEqual(wf["state"], "compensated")
        states = {s["name"]: s["state"] for s in wf["steps"]}
        self.assertEqual(states, {"one": "compensated", "two": "compensated",
                                  "three": "failed", "four": "skipped"})

    async def test_no_rollback(self):
        undone = []

        def bad():
            raise ValueError("bad input")
        wid = await self.m.create_recovery_workflow("norb", [
            {"name": "a", "callable": lambda: None,
             "rollback": lambda: undone.append("a")},
            {"name": "b", "callable": bad},
        ], rollback_on_failure=False)
        success, errors = await self.m.execute_recovery_workflow(wid)
        self.assertFalse(success)
        self.assertEqual(undone, [])
        self.assertEqual([e.step for e in errors], ["b"])
        self.assertEqual((await self.m.get_workflow(wid))["state"], "failed")

    async def test_parallel_branches_and_plain_callables(self):
        order = []

        async def slow():
            await asyncio.sleep(0.1)
            order.append("slow")

        def fast():
            order.append("fast")
        wid = await self.m.create_recovery_workflow("par", [
            {"name": "slow", "callable": slow},
            {"name": "fast", "callable": fast, "after": []},
        ])
        ok, errors = await self.m.execute_recovery_workflow(wid)
        self.assertTrue(ok, errors)
        self.assertEqual(order, ["fast", "slow"])

        def plain_step():
            order.append("plain")
        wid = await self.m.create_recovery_workflow("plain", [plain_step])
        ok, _ = await self.m.execute_recovery_workflow(wid)
        self.assertTrue(ok)
        self.assertEqual(order[-1], "plain")

    async def test_client_step_retried(self):
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) < 2:
                raise ConnectionError("once")
            return "ok"
        wid = await self.m.create_recovery_workflow("retry", [
            {"name": "a", "callable": flaky,
             "retry": RetryConfig(max_attempts=3, base_delay=0,
                                  jitter=False)}])
        t = asyncio.ensure_future(self.m.execute_recovery_workflow(wid))
        for _ in range(100):            # the retry waits on the daemon clock
            await asyncio.sleep(0.02)
            if t.done():
                break
            await self.m.call("debug.advance", {"ms": 1000})
        ok, errors = await asyncio.wait_for(t, 5)
        self.assertTrue(ok, errors)
        self.assertEqual(len(calls), 2)
        wf = await self.m.get_workflow(wid)
        self.assertEqual(wf["steps"][0]["attempts"], 2)
        self.assertEqual(wf["steps"][0]["output"], {"result": "ok"})

    async def test_bad_operations(self):
        with self.assertRaises(TypeError):
            await self.m.create_recovery_workflow("bad", [{"name": "x"}])
        with self.assertRaises(TypeError):
            await self.m.create_recovery_workflow("bad", [42])


if __name__ == "__main__":
    unittest.main()
