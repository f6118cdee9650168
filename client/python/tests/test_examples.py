"""Every example in examples/ runs against a test daemon."""

import os
import subprocess
import sys
import unittest

import ermd_harness as H

# A real clock: the examples are what users run.
D = H.Daemon(manual_clock=False)
setUpModule, tearDownModule = D.start, D.stop
EXAMPLES = os.path.join(H.PKG, "examples")


def run(name, *args):
    env = D.env()
    env.pop("PYTHONPATH")     # the examples find ermd_client themselves
    p = subprocess.run([sys.executable, os.path.join(EXAMPLES, name)] +
                       list(args), env=env, cwd="/", capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


class ExamplesTest(unittest.TestCase):
    def check(self, name, *args):
        rc, out, err = run(name, *args)
        self.assertEqual(rc, 0, "%s: %s%s" % (name, out, err))
        return out

    def test_every_example_is_tested(self):
        have = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
        self.assertEqual(have, sorted([
            "basic_usage.py", "circuit_breaker.py", "decorator.py",
            "fallback_storage.py", "metrics.py", "retry_config.py",
            "supabase_integration.py", "workflow.py"]))

    def test_basic_usage(self):
        out = self.check("basic_usage.py")
        self.assertIn("Operation succeeded: processed after 2 attempts", out)
        path = os.path.join(D.root, "example.txt")
        with open(path, "w") as f:
            f.write("data")
        out = self.check("basic_usage.py", path)
        self.assertIn("Operation succeeded:", out)
        self.assertEqual(len(D.call("backup.list",
                                    {"path": path})["backups"]), 1)

    def test_circuit_breaker(self):
        out = self.check("circuit_breaker.py")
        self.assertEqual(out.count("failed: service unavailable"), 5)
        self.assertEqual(out.count("blocked, circuit is open"), 2)
        self.assertIn("Circuit breaker: closed -> open", out)
        self.assertIn("Circuit breaker state: open", out)

    def test_fallback_storage(self):
        out = self.check("fallback_storage.py")
        self.assertIn("Success: True", out)
        self.assertIn("Storage used: secondary", out)

    def test_workflow(self):
        if "workflow.create" not in D.call("hello")["methods"]:
            self.skipTest("this ermd has no workflow.create")
        out = self.check("workflow.py")
        self.assertIn("success=True, errors=[]", out)
        self.assertLess(out.index("prepare:"), out.index("process:"))
        self.assertLess(out.index("process:"), out.index("save:"))

    def test_decorator(self):
        out = self.check("decorator.py")
        self.assertIn("Result: TEST DATA (after 2 calls)", out)

    def test_retry_config(self):
        out = self.check("retry_config.py")
        self.assertIn("flaky: success=True result=ok attempts=3", out)
        self.assertIn("broken: success=False error=ValueError('bad input') "
                      "attempts=1", out)

    def test_metrics(self):
        out = self.check("metrics.py")
        self.assertRegex(out, r"Total errors: \d+")
        self.assertRegex(out, r"Recovery rate: \d+")
        self.assertRegex(out, r"Circuit breaker state: "
                              r"(closed|open|half_open)")

    def test_supabase_integration(self):
        out = self.check("supabase_integration.py")
        self.assertIn("supabase_url/supabase_key are ignored", out)
        self.assertIn("Forwarding to Supabase: off", out)


if __name__ == "__main__":
    unittest.main()
