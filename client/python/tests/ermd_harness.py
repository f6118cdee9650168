"""A private ermd for the tests: a temp state dir and socket, a config with
a root (backups) and two dir backends (fallback), --manual-clock.

ERMD names the daemon binary (default: build/ermd of the repository)."""

import asyncio
import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)                      # client/python
REPO = os.path.dirname(os.path.dirname(PKG))     # the repository
sys.path.insert(0, PKG)

ERMD = os.environ.get("ERMD") or os.path.join(REPO, "build", "ermd")
if not os.path.isabs(ERMD):
    ERMD = os.path.join(REPO, ERMD)


_running = set()


def _stop_all():
    for d in list(_running):
        d.stop()


atexit.register(_stop_all)


def _die_with_parent():
    # PR_SET_PDEATHSIG: a test process killed outright takes ermd with it.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Daemon:
    """One private ermd. A test module makes one at import and lets
    unittest start and stop it around the module's tests:

        D = H.Daemon()
        setUpModule, tearDownModule = D.start, D.stop
    """

    def __init__(self, manual_clock=True, extra_conf=""):
        self.dir = tempfile.mkdtemp(prefix="ermd-pytest.")
        self.root = os.path.join(self.dir, "root")
        self.b1 = os.path.join(self.dir, "b1")
        self.b2 = os.path.join(self.dir, "b2")
        for d in (self.root, self.b1, self.b2, os.path.join(self.dir, "st")):
            os.makedirs(d)
        self.sock = os.path.join(self.dir, "ermd.sock")
        self.conf = os.path.join(self.dir, "ermd.conf")
        with open(self.conf, "w") as f:
            f.write("[retry]\nbudget_min_per_s = 100000\n"
                    "[root.data]\npath = %s\n"
                    "[backend.primary]\ntype = dir\npath = %s\npriority = 0\n"
                    "[backend.secondary]\ntype = dir\npath = %s\n"
                    "priority = 1\n%s" % (self.root, self.b1, self.b2,
                                          extra_conf))
        self.manual_clock = manual_clock
        self.proc = None
        self.log = None

    def start(self):
        if not os.access(ERMD, os.X_OK):
            raise RuntimeError("no ermd at %s (run make, or set ERMD)" % ERMD)
        argv = [ERMD, "-f", "-c", self.conf, "-S", self.sock, "-D",
                os.path.join(self.dir, "st")]
        if self.manual_clock:
            argv.append("--manual-clock")
        self.log = open(os.path.join(self.dir, "ermd.log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        _running.add(self)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ermd exited: see %s/ermd.log" % self.dir)
            try:
                self.call("ping")
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("ermd did not become ready")

    def call(self, method, params=None):
        """A synchronous call on a fresh connection (setup, checks)."""
        s = socket.socket(socket.AF_UNIX)
        try:
            s.settimeout(10)
            s.connect(self.sock)
            b = json.dumps({"id": 1, "method": method,
                            "params": params or {}}).encode()
            s.sendall(struct.pack(">I", len(b)) + b)
            head = b""
            while len(head) < 4:
                c = s.recv(4 - len(head))
                if not c:
                    raise OSError("closed")
                head += c
            (n,) = struct.unpack(">I", head)
            body = b""
            while len(body) < n:
                c = s.recv(n - len(body))
                if not c:
                    raise OSError("closed")
                body += c
            msg = json.loads(body)
            if "error" in msg:
                raise RuntimeError("%s: %s" % (method, msg["error"]))
            return msg["result"]
        finally:
            s.close()

    def stop(self):
        _running.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self):
        e = dict(os.environ)
        e["ERMD_SOCKET"] = self.sock
        e["PYTHONPATH"] = PKG + os.pathsep + e.get("PYTHONPATH", "")
        return e


def run(coro):
    return asyncio.run(coro)
