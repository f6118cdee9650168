#!/usr/bin/python3
"""Self-test of the Supabase test harness (no ermd needed).

Starts a throwaway cluster (pg.sh) and the endpoint (postgrest.py), then
checks every conformance point of shared/spec/SUPABASE-TESTING.md with curl,
the way the forwarder will meet them, plus the admin API. Prints one line
per check and `N passed, M failed` last; exits 1 on any failure. Everything
it starts is stopped on exit, failure, Ctrl-C or SIGTERM. It only talks to
127.0.0.1 and to the cluster's unix socket.

usage: /usr/bin/python3 tests/supabase/selftest.py [-v]
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "sb_secret_selftest0123456789abcdef"
ANON = "sb_publishable_selftest0123456789abcdef"
PREFER = "return=minimal, resolution=ignore-duplicates, missing=default"
ERROR_COLS = "id,at,host,operation,category,severity,message,context"
VERBOSE = "-v" in sys.argv[1:]


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop(f"signal {signum}")


# ---------------------------------------------------------------------------
# The pair under test.
# ---------------------------------------------------------------------------

class Harness:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="ermd-selftest.")
        self.pgdir = None
        self.proc = None
        self.base = None
        self.env = {}

    def start(self):
        out = subprocess.run(["sh", os.path.join(HERE, "pg.sh"), "start"],
                             check=True, stdout=subprocess.PIPE, text=True,
                             timeout=60).stdout
        self.env = dict(l.split("=", 1) for l in out.split())
        self.pgdir = self.env["PGDIR"]
        self.log = open(os.path.join(self.tmp, "endpoint.log"), "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "postgrest.py"),
             "--port", "0", "--pghost", self.env["PGHOST"],
             "--pgport", self.env["PGPORT"],
             "--dbname", self.env["PGDATABASE"],
             "--secret-key", SECRET, "--anon-key", ANON, "-v",
             "--die-with-parent"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()      # "PORT <n>"
        if not line.startswith("PORT "):
            raise RuntimeError(f"endpoint did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def pg(self, action):
        subprocess.run(["sh", os.path.join(HERE, "pg.sh"), action,
                        self.pgdir], check=True, timeout=60)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pgdir is not None:
            subprocess.run(["sh", os.path.join(HERE, "pg.sh"), "stop",
                            self.pgdir], timeout=60)
            self.pgdir = None


H = Harness()


class Reply:
    def __init__(self, rc, status, headers, body, elapsed):
        self.rc, self.status, self.headers = rc, status, headers
        self.body, self.elapsed = body, elapsed

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        return (f"<rc={self.rc} status={self.status} "
                f"body={self.body[:300]!r}>")


def curl(path, body=None, method=None, key=SECRET, auth="same",
         ctype="application/json", prefer=None, headers=(), max_time=10):
    """One request with curl. auth: "same" (Bearer <key>), None, or a value."""
    hfile = os.path.join(H.tmp, "h")
    bfile = os.path.join(H.tmp, "b")
    args = ["curl", "-sS", "-o", bfile, "-D", hfile, "-w", "%{http_code}",
            "--max-time", str(max_time), "-H", "Expect:"]
    if method:
        args += ["-X", method]
    if key is not None:
        args += ["-H", f"apikey: {key}"]
    if auth == "same" and key is not None:
        args += ["-H", f"Authorization: Bearer {key}"]
    elif auth not in (None, "same"):
        args += ["-H", f"Authorization: {auth}"]
    args += ["-H", f"Content-Type: {ctype}" if ctype else "Content-Type:"]
    if prefer:
        args += ["-H", f"Prefer: {prefer}"]
    for h in headers:
        args += ["-H", h]
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
        args += ["--data-binary", "@-"]
    args.append(H.base + path)
    for f in (hfile, bfile):
        if os.path.exists(f):
            os.unlink(f)
    t0 = time.monotonic()
    p = subprocess.run(args, input=data or b"", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=max_time + 5)
    elapsed = time.monotonic() - t0
    hdrs = {}
    if os.path.exists(hfile):
        blocks = open(hfile, "rb").read().decode("latin-1").split("\r\n\r\n")
        last = [b for b in blocks if b.strip()][-1:] or [""]
        for line in last[0].split("\r\n")[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
    rbody = open(bfile, "rb").read() if os.path.exists(bfile) else b""
    status = int(p.stdout or b"0")
    r = Reply(p.returncode, status, hdrs, rbody, elapsed)
    if VERBOSE:
        print(f"    {method or ('POST' if body is not None else 'GET')} "
              f"{path} -> {r}")
    return r


def admin(path, body=None, method=None):
    r = curl(path, body, method=method, key=None, auth=None)
    if r.status != 200:
        raise RuntimeError(f"admin {path}: {r}")
    return r.json()


def count(table, ids):
    return admin(f"/_test/count?table={table}&ids={','.join(ids)}")["count"]


# ---------------------------------------------------------------------------
# Checks.
# ---------------------------------------------------------------------------

PASSED = FAILED = 0


def check(name, cond, info=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"ok   {name}")
    else:
        FAILED += 1
        print(f"FAIL {name}  {info}")


def is_pgrst_error(r, status, code):
    j = r.json()
    return (r.status == status and isinstance(j, dict)
            and set(j) == {"code", "message", "details", "hint"}
            and j["code"] == code)


def uid():
    return str(uuid.uuid4())


def err_row(i=None, **kw):
    row = {"id": i or uid(), "at": "2025-01-31T12:34:56.789Z",
           "host": "selftest", "operation": "upload",
           "category": "NETWORK_ERROR", "severity": "warning",
           "message": "connection reset", "context": {"try": 1}}
    row.update(kw)
    return row


def alert_row(i=None, **kw):
    row = {"id": i or uid(), "at": "2025-01-31T12:34:56.789Z",
           "host": "selftest", "key": "k", "kind": "escalate"}
    row.update(kw)
    return row


def forward(table, rows, cols=None, **kw):
    """A request exactly as BEHAVIOUR.md §6 describes the forwarder's."""
    cols = cols or ",".join(rows[0])
    kw.setdefault("prefer", PREFER)
    kw["headers"] = ["User-Agent: ermd/0.1.0"] + list(kw.get("headers", []))
    return curl(f"/rest/v1/{table}?on_conflict=id&columns={cols}", rows, **kw)


def t_gateway():
    row = err_row()
    r = curl("/rest/v1/erm_errors", row, key=None)
    check("1 no apikey -> 401 {message: No API key found in request}",
          r.status == 401 and r.json() == {
              "message": "No API key found in request"}, r)
    r = curl("/rest/v1/erm_errors", row, key="sb_secret_wrong")
    check("1 unknown key -> 401 {message: Invalid API key}, no code",
          r.status == 401 and r.json() == {"message": "Invalid API key"}, r)
    r = curl("/rest/v1/erm_errors", row, auth=None)
    check("1 secret key, no Authorization -> runs as service_role (201)",
          r.status == 201, r)
    r = curl("/rest/v1/erm_errors", err_row(), auth="same")
    check("1 secret key, Authorization: Bearer <same key> -> 201",
          r.status == 201, r)
    other = err_row()
    r = curl("/rest/v1/erm_errors", other, auth="Bearer sb_secret_other")
    check("1 secret key, a different Authorization -> 401, nothing inserted",
          r.status == 401 and count("erm_errors", [other["id"]]) == 0, r)
    r = curl("/rest/v1/erm_errors", err_row(),
             auth="Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
    check("1 secret key, Authorization with some JWT -> 401 PGRST301",
          is_pgrst_error(r, 401, "PGRST301")
          and "invalid_token" in r.headers.get("www-authenticate", ""), r)


def t_routing():
    r = curl("/rest/v1/erm_errorz", err_row())
    j = r.json() or {}
    check("2 unknown table -> 404 PGRST205 with PostgREST's message/hint",
          is_pgrst_error(r, 404, "PGRST205")
          and j["message"] == "Could not find the table 'public.erm_errorz' "
                              "in the schema cache"
          and j["hint"] == "Perhaps you meant the table 'public.erm_errors'"
          and j["details"] is None, r)
    r = curl("/rest/v1/no_such_thing", err_row())
    check("2 unknown table, nothing close -> 404 PGRST205, hint null",
          is_pgrst_error(r, 404, "PGRST205") and r.json()["hint"] is None, r)
    r = curl("/rest/v1/erm_errors", json.dumps(err_row()), ctype="text/plain")
    check("2 Content-Type text/plain -> 400 PGRST102",
          is_pgrst_error(r, 400, "PGRST102") and r.json()["message"] ==
          "Content-Type not acceptable: text/plain", r)
    r = curl("/rest/v1/erm_errors", "id=1",
             ctype="application/x-www-form-urlencoded")
    check("2 Content-Type form-urlencoded -> 400 PGRST102",
          is_pgrst_error(r, 400, "PGRST102"), r)
    r = curl("/rest/v1/erm_errors", b"")
    check("2 empty body -> 400 PGRST102 Empty or invalid json",
          is_pgrst_error(r, 400, "PGRST102")
          and r.json()["message"] == "Empty or invalid json", r)
    r = curl("/rest/v1/erm_errors", b'[{"id": ')
    check("2 invalid JSON -> 400 PGRST102", is_pgrst_error(r, 400, "PGRST102"),
          r)
    r = curl(f"/rest/v1/erm_errors?on_conflict=id&columns={ERROR_COLS}",
             b"[{oops}]", prefer=PREFER)
    check("2 invalid JSON with ?columns= -> 400 PGRST102",
          is_pgrst_error(r, 400, "PGRST102"), r)
    r = curl("/rest/v1/erm_errors", b'{"x": NaN}')
    check("2 NaN is not JSON -> 400 PGRST102",
          is_pgrst_error(r, 400, "PGRST102"), r)
    r = curl("/elsewhere", err_row())
    check("gateway: unknown route -> 404 (Kong's message)",
          r.status == 404 and r.json() == {
              "message": "no Route matched with those values"}, r)


def t_body():
    one = err_row()
    r = curl("/rest/v1/erm_errors", one)
    check("3 one object -> 201, one row", r.status == 201 and
          count("erm_errors", [one["id"]]) == 1, r)

    rows = [err_row(), err_row(id="not-a-uuid"), err_row()]
    good = [rows[0]["id"], rows[2]["id"]]
    r = forward("erm_errors", rows)
    check("3 array with one bad uuid -> 400 22P02, nothing inserted",
          is_pgrst_error(r, 400, "22P02") and count("erm_errors", good) == 0, r)
    rows = [err_row(), err_row(at="yesterday-ish"), err_row()]
    r = forward("erm_errors", rows)
    check("3 array with one bad timestamp -> 400 (22007), nothing inserted",
          r.status == 400 and (r.json() or {}).get("code", "")[:2] == "22"
          and count("erm_errors", [rows[0]["id"], rows[2]["id"]]) == 0, r)

    a, b = err_row(), err_row()
    del b["message"]
    r = curl("/rest/v1/erm_errors", [a, b])
    check("3 no ?columns=, key sets differ -> 400 PGRST102 "
          "All object keys must match",
          is_pgrst_error(r, 400, "PGRST102") and r.json()["message"] ==
          "All object keys must match" and count("erm_errors", [a["id"]]) == 0,
          r)
    r = curl("/rest/v1/erm_errors", [a, 5])
    check("3 no ?columns=, a non-object element -> 400 PGRST102",
          is_pgrst_error(r, 400, "PGRST102"), r)

    a, b = err_row(), err_row(extra="ignored", another=1)
    del a["message"]
    r = curl("/rest/v1/erm_errors?columns=" + ERROR_COLS, [a, b])
    rows = admin("/_test/sql", {"sql": f"select id::text, message from "
                                       f"erm_errors where id in "
                                       f"('{a['id']}', '{b['id']}')"})["rows"]
    got = dict(rows)
    check("3 ?columns=: extra keys ignored, a missing key is NULL",
          r.status == 201 and got.get(a["id"], "x") is None
          and got.get(b["id"]) == "connection reset", r)

    a = err_row()
    del a["severity"]                   # NOT NULL DEFAULT 'error'
    r = curl("/rest/v1/erm_errors?columns=" + ERROR_COLS, [a])
    check("3 ?columns= without missing=default: missing -> NULL (23502 here)",
          is_pgrst_error(r, 400, "23502"), r)
    r = curl("/rest/v1/erm_errors?columns=" + ERROR_COLS, [a],
             prefer="missing=default")
    rows = admin("/_test/sql", {"sql": f"select severity, received_at is not "
                                       f"null from erm_errors where id = "
                                       f"'{a['id']}'"})["rows"]
    check("3 ?columns= + Prefer: missing=default: missing -> column default",
          r.status == 201 and rows == [["error", True]], (r, rows))
    al = alert_row(details=None)
    r = curl("/rest/v1/erm_alerts?columns=id,at,host,key,kind,details", [al],
             prefer="missing=default")
    check("3 missing=default keeps an explicit null (NOT NULL -> 23502)",
          is_pgrst_error(r, 400, "23502"), r)

    bad = err_row(nope=1)
    r = curl("/rest/v1/erm_errors", [bad])
    j = r.json() or {}
    check("3 a column that does not exist (body) -> 400 PGRST204",
          is_pgrst_error(r, 400, "PGRST204") and j["message"] ==
          "Could not find the 'nope' column of 'erm_errors' in the schema cache",
          r)
    r = curl("/rest/v1/erm_errors?columns=id,at,nope", [err_row()])
    check("3 a column that does not exist (?columns=) -> 400 PGRST204",
          is_pgrst_error(r, 400, "PGRST204"), r)


def t_conflict():
    rows = [err_row(), err_row()]
    ids = [x["id"] for x in rows]
    r1 = forward("erm_errors", rows)
    r2 = forward("erm_errors", rows)
    check("4 ignore-duplicates + on_conflict=id: resend of existing rows -> "
          "201, still one row each",
          r1.status == 201 and r2.status == 201 and
          admin(f"/_test/count?table=erm_errors&ids={','.join(ids)}")[
              "counts"] == {i: 1 for i in ids}, (r1, r2))
    new = err_row()
    r = forward("erm_errors", rows + [new])
    check("4 ignore-duplicates: existing + new -> 201, new row added",
          r.status == 201 and count("erm_errors", ids + [new["id"]]) == 3, r)
    r = curl("/rest/v1/erm_errors", rows[:1])
    check("4 no resolution preference: duplicate -> 409 23505",
          is_pgrst_error(r, 409, "23505"), r)
    r = curl("/rest/v1/erm_errors?on_conflict=id", rows[:1])
    check("4 on_conflict=id without resolution: duplicate -> 409 23505",
          is_pgrst_error(r, 409, "23505"), r)
    r = forward("erm_errors", rows[:1])
    check("4 Preference-Applied echoes the applied preferences",
          r.headers.get("preference-applied") ==
          "resolution=ignore-duplicates, missing=default, return=minimal", r)
    r = forward("erm_errors", rows + [err_row()], prefer=PREFER + ", count=exact")
    check("4 count=exact: Content-Range */N counts only the rows added",
          r.status == 201 and r.headers.get("content-range") == "*/1", r)


def t_minimal():
    r = forward("erm_errors", [err_row()])
    check("5 return=minimal -> 201, empty body, Content-Length: 0",
          r.status == 201 and r.body == b"" and
          r.headers.get("content-length") == "0", r)
    r = curl("/rest/v1/erm_errors", [err_row()], prefer="return=representation")
    j = r.json()
    check("5 (return=representation -> 201 with the rows)",
          r.status == 201 and isinstance(j, list) and len(j) == 1, r)


def t_pg_errors():
    # 42501: the anon key has no grant at all -> 401 for anon.
    r = curl("/rest/v1/erm_errors", [err_row()], key=ANON)
    check("6 42501 as anon -> 401 (schema grants nothing to anon)",
          is_pgrst_error(r, 401, "42501"), r)
    # 42501 as service_role -> 403: revoke, try, grant back.
    admin("/_test/sql", {"sql": "revoke insert on erm_alerts from service_role"})
    r = forward("erm_alerts", [alert_row()])
    admin("/_test/sql", {"sql": "grant insert on erm_alerts to service_role"})
    check("6 42501 as service_role (INSERT revoked) -> 403",
          is_pgrst_error(r, 403, "42501"), r)
    r = curl("/rest/v1/erm_errors?on_conflict=id", [err_row()],
             prefer="resolution=merge-duplicates")
    check("6 merge-duplicates needs UPDATE, not granted -> 403 42501",
          is_pgrst_error(r, 403, "42501"), r)

    # 23503: a foreign key in a test-only table.
    admin("/_test/sql", {"sql": """
        create table if not exists public.erm_selftest_fk (
            id uuid primary key,
            error_id uuid not null references public.erm_errors (id));
        grant select, insert on public.erm_selftest_fk to service_role"""})
    r = curl("/rest/v1/erm_selftest_fk", [{"id": uid(), "error_id": uid()}])
    check("6 23503 foreign key violation -> 409",
          is_pgrst_error(r, 409, "23503"), r)

    # 57014: per-row slowness (trigger) + statement_timeout on service_role.
    admin("/_test/slow", {"table": "erm_errors", "per_row_ms": 40})
    admin("/_test/statement_timeout", {"role": "service_role", "ms": 150})
    big = [err_row() for _ in range(8)]         # ~320 ms > 150 ms
    r = forward("erm_errors", big)
    small = [err_row()]                         # ~40 ms
    r2 = forward("erm_errors", small)
    admin("/_test/reset", {})
    check("6 57014 statement timeout -> 500, nothing inserted",
          is_pgrst_error(r, 500, "57014") and
          count("erm_errors", [x["id"] for x in big]) == 0, r)
    check("6 57014: a smaller batch under the timeout -> 201",
          r2.status == 201 and count("erm_errors", [small[0]["id"]]) == 1, r2)

    # Poison: a real error from the database for one id of the batch.
    rows = [err_row() for _ in range(3)]
    admin("/_test/poison", {"table": "erm_errors", "id": rows[1]["id"]})
    r = forward("erm_errors", rows)
    check("6 poison row -> 400 22P02, the whole batch refused",
          is_pgrst_error(r, 400, "22P02") and
          count("erm_errors", [x["id"] for x in rows]) == 0, r)
    r = forward("erm_errors", [rows[0], rows[2]])
    check("6 poison row: the rest alone -> 201",
          r.status == 201 and count("erm_errors", [rows[0]["id"],
                                                   rows[2]["id"]]) == 2, r)
    admin("/_test/poison", method="DELETE")

    # Connection failure: the database is down -> 503, then up again.
    H.pg("down")
    r = forward("erm_errors", [err_row()])
    H.pg("up")
    check("6 database unreachable -> 503 PGRST000",
          is_pgrst_error(r, 503, "PGRST000"), r)
    row = err_row()
    r = forward("erm_errors", [row])
    check("6 database back -> 201 again",
          r.status == 201 and count("erm_errors", [row["id"]]) == 1, r)


def t_faults():
    admin("/_test/requests", method="DELETE")
    admin("/_test/faults", {"status": 503, "headers": {"Retry-After": "2"},
                            "body": "<html><body>down</body></html>",
                            "count": 2})
    row = err_row()
    r1 = forward("erm_errors", [row])
    r2 = forward("erm_errors", [row])
    r3 = forward("erm_errors", [row])
    check("7 respond: 503 + Retry-After + HTML body, for count=2 requests",
          r1.status == r2.status == 503 and
          r1.headers.get("retry-after") == "2" and
          r1.body == b"<html><body>down</body></html>" and
          r1.headers.get("content-type", "").startswith("text/html"),
          (r1, r2))
    check("7 respond: the next request is served for real (201)",
          r3.status == 201 and count("erm_errors", [row["id"]]) == 1, r3)
    for st in (429, 520, 502):
        admin("/_test/faults", {"status": st})
        r = forward("erm_errors", [err_row()])
        check(f"7 respond: status {st}", r.status == st, r)

    admin("/_test/faults", {"action": "delay", "delay_ms": 400})
    row = err_row()
    r = forward("erm_errors", [row])
    check("7 delay 400 ms, then the real response",
          r.status == 201 and r.elapsed >= 0.4 and
          count("erm_errors", [row["id"]]) == 1, (r, r.elapsed))

    admin("/_test/faults", {"action": "reset"})
    row = err_row()
    r = forward("erm_errors", [row] * 1 + [err_row() for _ in range(20)])
    check("7 reset mid-request: connection reset, nothing inserted",
          r.rc in (52, 55, 56) and r.status == 0 and
          count("erm_errors", [row["id"]]) == 0, r)

    admin("/_test/faults", {"action": "reset", "after_insert": True})
    rows = [err_row(), err_row()]
    ids = [x["id"] for x in rows]
    r = forward("erm_errors", rows)
    again = forward("erm_errors", rows)
    check("7 reset after_insert: client sees a reset, rows did land; "
          "the resend -> 201, still one row each",
          r.rc in (52, 55, 56) and again.status == 201 and
          admin(f"/_test/count?table=erm_errors&ids={','.join(ids)}")[
              "counts"] == {i: 1 for i in ids}, (r, again))

    admin("/_test/faults", {"status": 502, "after_insert": True})
    row = err_row()
    r = forward("erm_errors", [row])
    rec = admin("/_test/requests")["requests"][-1]
    check("7 respond after_insert: 502 to the client, the row did land",
          r.status == 502 and count("erm_errors", [row["id"]]) == 1 and
          rec["real_status"] == 201 and rec["inserted"] == 1, (r, rec))

    admin("/_test/faults", {"action": "hang"})
    row = err_row()
    r = forward("erm_errors", [row], max_time=1)
    r2 = forward("erm_errors", [row])
    check("7 hang: no answer until the client gives up (curl timeout)",
          r.rc == 28 and r.status == 0 and r.elapsed >= 0.9, r)
    check("7 hang: then the next request is served (201, one row)",
          r2.status == 201 and count("erm_errors", [row["id"]]) == 1, r2)

    admin("/_test/faults", {"body_limit": 2000, "count": -1})
    small = [err_row()]
    big = [err_row() for _ in range(12)]
    rb = forward("erm_errors", big)
    rc = forward("erm_errors", big, headers=["Expect: 100-continue"])
    rs = forward("erm_errors", small)
    faults = admin("/_test/faults")["faults"]
    admin("/_test/faults", method="DELETE")
    check("7 body_limit: a larger body -> 413 with an HTML body",
          rb.status == 413 and rb.body.startswith(b"<html>") and
          count("erm_errors", [x["id"] for x in big]) == 0, rb)
    check("7 body_limit: 413 also before the body with Expect: 100-continue",
          rc.status == 413 and rc.rc == 0, rc)
    check("7 body_limit: a smaller body passes (201); the rule stays (-1)",
          rs.status == 201 and len(faults) == 1 and faults[0]["fired"] == 2,
          (rs, faults))

    admin("/_test/faults", {"status": 503, "table": "erm_alerts"})
    re_ = forward("erm_errors", [err_row()])
    ra = forward("erm_alerts", [alert_row()])
    check("7 a fault can target one table",
          re_.status == 201 and ra.status == 503, (re_, ra))

    reqs = admin("/_test/requests")["requests"]
    last = reqs[-1]
    check("7 every request recorded: method, path, query, headers, "
          "body size, rows, ids, status, fault, times",
          len(reqs) >= 15 and last["method"] == "POST" and
          last["path"] == "/rest/v1/erm_alerts" and
          last["params"].get("on_conflict") == "id" and
          last["headers"].get("apikey") == SECRET and
          last["headers"].get("prefer") == PREFER and
          last["headers"].get("user-agent") == "ermd/0.1.0" and
          last["body_size"] > 0 and last["rows"] == 1 and
          len(last["ids"]) == 1 and last["status"] == 503 and
          last["fault"] == "respond" and last["end_ms"] >= last["t_ms"],
          last)
    hang = [q for q in reqs if q["fault"] == "hang"]
    check("7 the hang is recorded with the time the client gave up",
          len(hang) == 1 and hang[0]["status"] is None and
          900 <= hang[0]["end_ms"] - hang[0]["t_ms"] < 5000, hang)
    admin("/_test/requests", method="DELETE")
    check("7 DELETE /_test/requests clears the record",
          admin("/_test/requests")["requests"] == [])


def t_schema():
    q = lambda stmt: admin("/_test/sql", {"sql": stmt})["rows"]
    tables = ["erm_errors", "erm_recoveries", "erm_alerts"]
    privs = q("""
        select c.relname, r.rolname, p.privilege_type
          from pg_class c
          cross join (values ('anon'), ('authenticated'), ('service_role'))
                     as r(rolname)
          cross join (values ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'),
                             ('TRUNCATE'), ('REFERENCES'), ('TRIGGER'))
                     as p(privilege_type)
         where c.oid = any(array['public.erm_errors', 'public.erm_recoveries',
                                 'public.erm_alerts']::regclass[])
           and has_table_privilege(r.rolname, c.oid, p.privilege_type)
         order by 1, 2, 3""")
    want = [[t, "service_role", p] for t in sorted(tables)
            for p in ("INSERT", "SELECT")]
    check("schema: only service_role has privileges, exactly SELECT, INSERT "
          "(despite Supabase's default grants)", privs == want, privs)
    rls = q("""select relname, relrowsecurity from pg_class
                where relnamespace = 'public'::regnamespace
                  and relname like 'erm\\_%' and relkind = 'r'
                order by 1""")
    check("schema: RLS enabled on the three tables",
          rls == [[t, True] for t in sorted(tables)], rls)
    pk = q("""select c.relname, a.attname, format_type(a.atttypid, -1)
                from pg_index i join pg_class c on c.oid = i.indrelid
                join pg_attribute a on a.attrelid = i.indrelid
                                   and a.attnum = any(i.indkey)
               where i.indisprimary and c.relname in
                     ('erm_errors', 'erm_recoveries', 'erm_alerts')
               order by 1""")
    check("schema: id uuid primary key on each table",
          pk == [[t, "id", "uuid"] for t in sorted(tables)], pk)
    bypass = q("select rolbypassrls from pg_roles "
               "where rolname = 'service_role'")
    check("test cluster: service_role has BYPASSRLS, as in Supabase",
          bypass == [[True]], bypass)


def t_listen():
    # /proc/net/tcp: the listening socket's local address must be 127.0.0.1.
    port = f"{H.port:04X}"
    addrs = []
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and f[1].endswith(":" + port):
            addrs.append(f[1].split(":")[0])
    six = [line for line in open("/proc/net/tcp6").read().splitlines()[1:]
           if line.split()[3] == "0A" and
           line.split()[1].endswith(":" + port)]
    check("endpoint listens on 127.0.0.1 only",
          addrs == ["0100007F"] and not six, (addrs, six))


def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    if not shutil.which("curl"):
        print("selftest: curl not found: apt-get install -y curl")
        print("0 passed, 1 failed")
        sys.exit(1)
    t0 = time.monotonic()
    try:
        H.start()
        print(f"# cluster {H.pgdir}, endpoint {H.base} "
              f"({time.monotonic() - t0:.1f} s to start)")
        for t in (t_listen, t_schema, t_gateway, t_routing, t_body, t_conflict,
                  t_minimal, t_pg_errors, t_faults):
            try:
                t()
            except Stop:
                raise
            except Exception as e:          # a broken step fails, others run
                check(f"{t.__name__} ran to the end", False, repr(e))
    except Stop as e:
        check("selftest ran to the end", False, str(e))
    except Exception as e:
        check("harness started", False, repr(e))
    finally:
        H.stop()
        log = os.path.join(H.tmp, "endpoint.log")
        if os.path.exists(log):
            check("the endpoint logged no internal error (traceback)",
                  "Traceback" not in open(log).read())
        if FAILED and os.path.exists(log):
            print("# endpoint log (last 30 lines):")
            for line in open(log).read().splitlines()[-30:]:
                print("#   " + line)
        subprocess.run(["rm", "-rf", H.tmp])
    print(f"# {time.monotonic() - t0:.1f} s")
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
