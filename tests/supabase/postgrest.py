#!/usr/bin/python3
"""A PostgREST-conformant insert endpoint in front of a real PostgreSQL.

Test infrastructure for ermd's Supabase forwarder (shared/spec/
SUPABASE-TESTING.md). It plays the two parts of Supabase's Data API that the
forwarder talks to:

  * the API gateway: the `apikey` header (or `?apikey=`) must name a known
    key; a secret key runs as service_role, an anon/publishable key as anon;
  * PostgREST's insert: `POST /rest/v1/<table>`, parsed, validated and turned
    into ONE parameterised INSERT ... SELECT FROM json_to_recordset(...) built
    the way PostgREST builds it, executed in a transaction after
    `SET LOCAL ROLE <role>` (PostgREST: set_config('role', ..., true)) so that
    grants, RLS and per-role settings are really exercised; PostgreSQL's
    errors come back as {"code","details","hint","message"} with PostgREST's
    status table.

Test-only extras live under /_test/ (a prefix neither PostgREST nor the
Supabase gateway uses): fault injection for the next requests to /rest/v1,
a record of every request, poison rows, slow inserts, per-role statement
timeouts, row counts. They never change the normal path: a fault replaces the
response before or after it; poison and slowness are a real trigger in the
test database (tests/supabase/fixtures.sql).

Only POST on a table is implemented (the forwarder only inserts). See
tests/supabase/README.md for the admin API and the exact behaviour.

Run with Debian's interpreter (python3-psycopg2):
  /usr/bin/python3 tests/supabase/postgrest.py --port 0 \
      --pghost "$PGHOST" --pgport "$PGPORT" --dbname "$PGDATABASE" \
      --secret-key sb_secret_test [--anon-key sb_publishable_test]
The first line on stdout is `PORT <n>`; it listens on 127.0.0.1 only.
"""

import argparse
import contextlib
import difflib
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

try:
    import psycopg2
    import psycopg2.errors  # noqa: F401  (pgcode attributes)
    from psycopg2 import sql
except ImportError:
    sys.exit("postgrest.py: psycopg2 missing: apt-get install -y "
             "python3-psycopg2, and run it with /usr/bin/python3")

SCHEMA = "public"           # the one exposed schema, as in Supabase
JSON_CT = "application/json; charset=utf-8"
# Relation kinds PostgREST exposes: table, view, matview, foreign, partitioned.
RELKINDS = ("r", "v", "m", "f", "p")
# Stands in for the body's bind parameter while the statement is composed;
# NUL can appear neither in identifiers nor in catalog expressions.
PARAM = "\x00BODY\x00"

REASONS = {  # reason phrases http.server does not know (Cloudflare's 52x)
    520: "Web Server Returned an Unknown Error", 521: "Web Server Is Down",
    522: "Connection Timed Out", 523: "Origin Is Unreachable",
    524: "A Timeout Occurred", 525: "SSL Handshake Failed",
}


def now_ms():
    return int(time.time() * 1000)


def jdump(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def html_page(status, reason):
    """The kind of page a proxy (nginx here) sends with a 4xx/5xx."""
    title = f"{status} {reason}".strip()
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>"
            f"\r\n</body>\r\n</html>\r\n").encode()


class Response:
    """A complete HTTP response; `close` ends the connection after it."""

    def __init__(self, status, body=b"", headers=(), close=False, reason=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = list(headers)
        self.close = close
        self.reason = reason
        self.code = None        # PostgREST/PostgreSQL code, for the record
        self.inserted = None    # rows the INSERT added, for the record


# ---------------------------------------------------------------------------
# Error bodies: the gateway's {"message"} and PostgREST's four members.
# ---------------------------------------------------------------------------

def gateway_error(status, message):
    """Supabase API gateway error: only "message", no "code"."""
    return Response(status, jdump({"message": message}),
                    [("Content-Type", JSON_CT)])


def pgrst_error(status, code, message, details=None, hint=None, headers=()):
    """PostgREST's error shape (keys in aeson's order) and headers."""
    body = jdump({"code": code, "details": details, "hint": hint,
                  "message": message})
    hdrs = [("Content-Type", JSON_CT),
            ("Proxy-Status", f"PostgREST; error={code}")] + list(headers)
    r = Response(status, body, hdrs)
    r.code = code
    return r


def pg_status(code, message, authed):
    """PostgREST's PostgreSQL error code -> HTTP status table (Error.hs)."""
    c = code or ""
    two = c[:2]
    if two == "08":
        return 503                              # connection exception
    if two == "09":
        return 500                              # triggered action exception
    if two in ("0L", "0P"):
        return 403                              # invalid grantor / role spec
    if c in ("23503", "23505"):
        return 409                              # foreign key / unique
    if c == "25006":
        return 405                              # read only sql transaction
    if c == "21000":                            # cardinality violation
        return 400 if message.endswith("requires a WHERE clause") else 500
    if c == "22023":                            # invalid parameter value
        if message.startswith("role") and message.endswith("does not exist"):
            return 401
        return 400
    if two in ("25", "2D", "38", "39", "3B", "40"):
        return 500
    if two == "28":
        return 403                              # invalid authorization spec
    if c == "53400":
        return 500                              # configuration limit
    if two == "53":
        return 503                              # insufficient resources
    if two in ("54", "55"):
        return 500
    if c == "57P01":
        return 503                              # admin shutdown
    if two in ("57", "58", "F0", "HV", "XX"):
        return 500                              # 57014 statement timeout: 500
    if c == "P0001":
        return 400                              # RAISE default
    if two == "P0":
        return 500
    if c == "42883":
        return 406 if message.startswith("function xmlagg(") else 404
    if c == "42P01":
        return 404
    if c == "42P17":
        return 500
    if c == "42501":                            # insufficient privilege
        return 403 if authed else 401
    if two == "PT" and c[2:].isdigit():
        return int(c[2:])
    return 400                                  # 22xxx, other 23xxx, 42xxx...


def pg_error_response(e, authed):
    """Map a psycopg2 error to PostgREST's response."""
    code = getattr(e, "pgcode", None)
    if code is None:
        # The connection broke under the query: hasql's ClientError.
        return pgrst_error(503, "PGRST001",
                           "Database client error. Retrying the connection.",
                           details=str(e).strip() or None)
    diag = e.diag
    message = diag.message_primary or ""
    status = pg_status(code, message, authed)
    headers = [("WWW-Authenticate", "Bearer")] if status == 401 else []
    return pgrst_error(status, code, message, details=diag.message_detail,
                       hint=diag.message_hint, headers=headers)


def connect_error_response(e):
    return pgrst_error(503, "PGRST000",
                       "Database connection error. Retrying the connection.",
                       details=str(e).strip() or None)


# ---------------------------------------------------------------------------
# Request parsing (PostgREST's ApiRequest: Prefer, columns, payload).
# ---------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


PREFS = {  # preference -> (group, value), as in PostgREST's Preferences.hs
    "resolution=merge-duplicates": ("resolution", "merge"),
    "resolution=ignore-duplicates": ("resolution", "ignore"),
    "return=representation": ("return", "representation"),
    "return=minimal": ("return", "minimal"),
    "return=headers-only": ("return", "headers-only"),
    "params=single-object": ("params", "single-object"),
    "count=exact": ("count", "exact"),
    "count=planned": ("count", "planned"),
    "count=estimated": ("count", "estimated"),
    "tx=commit": ("tx", "commit"),
    "tx=rollback": ("tx", "rollback"),
    "missing=default": ("missing", "default"),
    "missing=null": ("missing", "null"),
    "handling=strict": ("handling", "strict"),
    "handling=lenient": ("handling", "lenient"),
}
# Order of Preference-Applied (prefAppliedHeader).
APPLIED_ORDER = ("resolution", "missing", "return", "params", "count",
                 "handling")


def parse_prefer(values):
    """All Prefer headers, comma-separated, first occurrence wins."""
    prefs, applied, invalid = {}, {}, []
    for v in values:
        for p in (x.strip() for x in v.split(",")):
            if not p:
                continue
            if p in PREFS:
                group, val = PREFS[p]
                if group not in prefs:
                    prefs[group] = val
                    applied[group] = p
            elif not (p.startswith("timezone=")
                      or p.startswith("max-affected=")):
                invalid.append(p)
    # tx= is accepted but ignored (db-tx-end does not allow overrides).
    applied.pop("tx", None)
    prefs.pop("tx", None)
    if prefs.get("handling") == "strict" and invalid:
        raise ApiError(pgrst_error(
            400, "PGRST122", "Invalid preferences given with handling=strict",
            details="Invalid preferences: " + ", ".join(invalid)))
    header = ", ".join(applied[g] for g in APPLIED_ORDER if g in applied)
    return prefs, header


COLNAME = re.compile(r"^[\w$ ]+(-[\w$ ]+)*$")     # PostgREST's pFieldName


def parse_column_list(param, value):
    """`columns=a,b` / `on_conflict=a,b`: names, optionally double-quoted.
    A malformed list is PGRST100 with a parsec-style message."""
    names, pos = [], 0
    for raw in value.split(","):
        name = raw.strip(" \t")
        if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
            name = name[1:-1]
        elif not COLNAME.match(name):
            at = pos + len(raw) - len(raw.lstrip(" \t"))
            got = repr(value[at]) if at < len(value) else "end of input"
            raise ApiError(pgrst_error(
                400, "PGRST100",
                f'"failed to parse {param} parameter ({value})" '
                f'(line 1, column {at + 1})',
                details=f"unexpected {got} expecting field name "
                        f"(* or [a..z0..9_$])"))
        names.append(name)
        pos += len(raw) + 1
    return names


def reject_constant(name):
    raise ValueError(f"invalid JSON constant {name}")


def parse_json(body):
    """Strict JSON (no NaN/Infinity) or PGRST102, PostgREST's generic text."""
    try:
        text = body.decode("utf-8")
        if not text.strip():
            raise ValueError("empty")
        return text, json.loads(text, parse_constant=reject_constant)
    except ValueError:      # UnicodeDecodeError and JSONDecodeError too
        raise ApiError(pgrst_error(400, "PGRST102", "Empty or invalid json"))


def payload_keys(value):
    """PostgREST's payloadAttributes: the key set of every object must be
    the first's. Returns (keys, replacement text or None)."""
    if isinstance(value, list):
        if not value:
            return [], None
        first = value[0]
        if not isinstance(first, dict):
            raise ApiError(pgrst_error(400, "PGRST102",
                                       "All object keys must match"))
        keys = set(first)
        for v in value:
            if not isinstance(v, dict) or set(v) != keys:
                raise ApiError(pgrst_error(400, "PGRST102",
                                           "All object keys must match"))
        return sorted(keys), None
    if isinstance(value, dict):
        return sorted(value), None
    # PostgREST truncates any other JSON value to an empty array.
    return [], "[]"


# ---------------------------------------------------------------------------
# The schema cache, read from the catalogs on each request (as authenticator,
# before the role switch) so DDL made by a test is seen at once, like
# Supabase's automatic schema reload.
# ---------------------------------------------------------------------------

class Table:
    def __init__(self, name, columns, pk):
        self.name = name
        self.columns = columns      # name -> (sql type, default expr or None)
        self.pk = pk                # primary key column names


def load_table(cur, name):
    cur.execute("""
        select c.oid from pg_class c
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = %s and c.relname = %s and c.relkind = any(%s)
           and not c.relispartition""", (SCHEMA, name, list(RELKINDS)))
    row = cur.fetchone()
    if row is None:
        return None
    oid = row[0]
    cur.execute("""
        select a.attname, format_type(a.atttypid, a.atttypmod),
               case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end
          from pg_attribute a
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
         order by a.attnum""", (oid,))
    columns = {n: (t, d) for n, t, d in cur.fetchall()}
    cur.execute("""
        select a.attname from pg_index i
          join pg_attribute a on a.attrelid = i.indrelid
                             and a.attnum = any(i.indkey)
         where i.indrelid = %s and i.indisprimary
         order by a.attnum""", (oid,))
    return Table(name, columns, [r[0] for r in cur.fetchall()])


def table_hint(cur, name):
    """PGRST205's hint: the closest table name (PostgREST uses a fuzzy set
    with a minimum score of 0.75; difflib's ratio is the stand-in)."""
    cur.execute("""
        select c.relname from pg_class c
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = %s and c.relkind = any(%s)""",
                (SCHEMA, list(RELKINDS)))
    names = [r[0] for r in cur.fetchall()]
    best = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f"Perhaps you meant the table '{SCHEMA}.{best[0]}'" if best else None


def role_settings(cur, role):
    """PostgREST's impersonated role settings: the role's own `user`-context
    settings (statement_timeout above all), database-specific ones last."""
    cur.execute("""
        select split_part(kv, '=', 1), substr(kv, strpos(kv, '=') + 1)
          from pg_db_role_setting s
          join pg_roles r on r.oid = s.setrole
          cross join lateral unnest(s.setconfig) as kv
         where r.rolname = %s
           and s.setdatabase in (0, (select oid from pg_database
                                      where datname = current_database()))
           and split_part(kv, '=', 1) in
               (select name from pg_settings where context = 'user')
         order by s.setdatabase""", (role,))
    return cur.fetchall()


# ---------------------------------------------------------------------------
# The INSERT, composed like PostgREST's mutatePlanToQuery + fromJsonBodyF.
# Values never enter the SQL text: the body is one bind parameter; names are
# quoted identifiers; types and default expressions come from the catalogs.
# ---------------------------------------------------------------------------

def build_insert(table, cols, apply_defaults, conflict, representation):
    ident = sql.Identifier
    qi = sql.SQL("{}.{}").format(ident(SCHEMA), ident(table.name))
    jt = "jsonb" if apply_defaults else "json"
    q = [sql.SQL("INSERT INTO "), qi]
    if cols:
        q += [sql.SQL("("), sql.SQL(", ").join(map(ident, cols)),
              sql.SQL(") SELECT "),
              sql.SQL(", ").join(sql.SQL("pgrst_body.{}").format(ident(c))
                                 for c in cols)]
    else:
        q.append(sql.SQL(" SELECT"))        # every column gets its default
    q.append(sql.SQL(" FROM (SELECT " + PARAM + "::" + jt +
                     " AS json_data) pgrst_payload, "))
    # An object becomes a one-element array: one code path for both.
    q.append(sql.SQL(
        f"LATERAL (SELECT CASE WHEN {jt}_typeof(pgrst_payload.json_data) = "
        f"'array' THEN pgrst_payload.json_data ELSE "
        f"{jt}_build_array(pgrst_payload.json_data) END AS val) "
        f"pgrst_uniform_json, "))
    source = "pgrst_uniform_json.val"
    if apply_defaults:
        # Prefer: missing=default: each element is laid over an object of the
        # listed columns' defaults, so a missing key takes the column default
        # and an explicit null stays null.
        defs = [sql.SQL("{}, {}").format(sql.Literal(c),
                                         sql.SQL(table.columns[c][1]))
                for c in cols if table.columns[c][1] is not None]
        q.append(sql.SQL(
            "LATERAL (SELECT jsonb_agg(jsonb_build_object({}) || elem) AS val "
            "FROM jsonb_array_elements(pgrst_uniform_json.val) elem) "
            "pgrst_json_defs, ").format(sql.SQL(", ").join(defs)))
        source = "pgrst_json_defs.val"
    if cols:
        typed = sql.SQL(", ").join(
            sql.SQL("{} {}").format(ident(c), sql.SQL(table.columns[c][0]))
            for c in cols)
        q.append(sql.SQL("LATERAL (SELECT {} FROM " + jt + "_to_recordset(" +
                         source + ") AS _({})) pgrst_body").format(
            sql.SQL(", ").join(map(ident, cols)), typed))
    else:
        q.append(sql.SQL("LATERAL (SELECT FROM " + jt + "_array_elements(" +
                         source + ") _) pgrst_body"))
    if conflict is not None:
        resolution, target = conflict
        q += [sql.SQL(" ON CONFLICT("),
              sql.SQL(", ").join(map(ident, target)), sql.SQL(") ")]
        if resolution == "ignore" or not cols:
            q.append(sql.SQL("DO NOTHING"))
        else:
            q += [sql.SQL("DO UPDATE SET "), sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(ident(c), ident(c))
                for c in cols)]
    if representation:
        q = ([sql.SQL("WITH pgrst_source AS (")] + q +
             [sql.SQL(" RETURNING "), qi, sql.SQL(".*) "),
              sql.SQL("SELECT coalesce(json_agg(_postgrest_t), '[]')::text "
                      "FROM (SELECT * FROM pgrst_source) _postgrest_t")])
    else:
        q.append(sql.SQL(" RETURNING 1"))
    return sql.Composed(q)


def execute_with_body(cur, composed, body_text):
    """Run `composed` with the request body as its single bind parameter."""
    text = composed.as_string(cur.connection)
    text = text.replace("%", "%%").replace(PARAM, "%s")
    cur.execute(text, (body_text,))


# ---------------------------------------------------------------------------
# Faults and the request record.
# ---------------------------------------------------------------------------

ACTIONS = ("respond", "delay", "reset", "hang")


class Fault:
    """One rule of POST /_test/faults; see tests/supabase/README.md."""

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        known = {"action", "count", "status", "headers", "body", "reason",
                 "delay_ms", "body_limit", "table", "after_insert"}
        extra = set(spec) - known
        if extra:
            raise ValueError(f"unknown fault member(s): {sorted(extra)}")
        self.action = spec.get("action", "respond")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        self.count = int(spec.get("count", 1))      # -1: until cleared
        if self.count == 0 or self.count < -1:
            raise ValueError("count must be >= 1, or -1 for until cleared")
        self.body_limit = spec.get("body_limit")
        if self.body_limit is not None:
            self.body_limit = int(self.body_limit)
            if self.body_limit < 0:
                raise ValueError("body_limit must be >= 0")
        self.status = int(spec.get("status",
                                   413 if self.body_limit is not None else 503))
        if not 100 <= self.status <= 999:
            raise ValueError("status must be 100..999")
        self.reason = spec.get("reason")
        h = spec.get("headers", {})
        if not isinstance(h, dict):
            raise ValueError("headers must be an object")
        self.headers = [(str(k), str(v)) for k, v in h.items()]
        body = spec.get("body")
        if body is None:
            self.body, self.body_type = None, None
        elif isinstance(body, str):
            self.body, self.body_type = body.encode(), "text/html"
        else:
            self.body, self.body_type = jdump(body).encode(), JSON_CT
        self.delay_ms = int(spec.get("delay_ms", 0))
        self.table = spec.get("table")
        self.after_insert = bool(spec.get("after_insert", False))
        self.fired = 0
        self.spec = spec

    def matches(self, table, size):
        if self.table is not None and self.table != table:
            return False
        if self.body_limit is not None:
            return size is not None and size > self.body_limit
        return True

    def response(self):
        reason = self.reason or REASONS.get(self.status) or \
            BaseHTTPRequestHandler.responses.get(self.status, ("",))[0]
        body = self.body if self.body is not None else \
            html_page(self.status, reason)
        headers = list(self.headers)
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.insert(0, ("Content-Type", self.body_type or "text/html"))
        close = any(k.lower() == "connection" and v.lower() == "close"
                    for k, v in headers)
        r = Response(self.status, body, headers, close=close, reason=reason)
        # A proxy refusing a body closes the connection (nginx does).
        if self.body_limit is not None and not close:
            r.headers.append(("Connection", "close"))
            r.close = True
        return r

    def describe(self):
        d = dict(self.spec)
        d["remaining"] = self.count
        d["fired"] = self.fired
        return d


class State:
    """Everything the admin API changes; one lock for all of it."""

    def __init__(self, keys):
        self.lock = threading.Lock()
        self.initial_keys = dict(keys)
        self.keys = dict(keys)          # api key -> role
        self.faults = []
        self.requests = []
        self.seq = 0
        self.stopping = threading.Event()
        self.timeouts_changed = {}      # role -> original setconfig entry

    def take_fault(self, table, size):
        with self.lock:
            for f in self.faults:
                if f.matches(table, size):
                    f.fired += 1
                    if f.count > 0:
                        f.count -= 1
                        if f.count == 0:
                            self.faults.remove(f)
                    return f
        return None

    MAX_RECORDS = 100000

    def record(self, rec):
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            self.requests.append(rec)
            if len(self.requests) > self.MAX_RECORDS:
                del self.requests[0]

    def update(self, rec, **kw):
        with self.lock:
            rec.update(kw)


# ---------------------------------------------------------------------------
# HTTP.
# ---------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive and 100-continue, as curl
    timeout = 300                       # idle keep-alive connections

    # -- plumbing -----------------------------------------------------------

    def handle_expect_100(self):
        # Do not answer `Expect: 100-continue` yet: a fault may refuse the
        # body (413) or reset the connection before it is sent.
        self.expect_100 = True
        return True

    def send_continue(self):
        if getattr(self, "expect_100", False):
            self.expect_100 = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()

    def content_length(self):
        """Declared body size; None for chunked; ApiError if malformed."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            return None
        cl = self.headers.get("Content-Length")
        if cl is None:
            return 0
        if not cl.strip().isdigit():
            raise ApiError(Response(400, html_page(400, "Bad Request"),
                                    [("Content-Type", "text/html")],
                                    close=True))
        return int(cl)

    def read_body(self):
        self.send_continue()
        n = self.content_length()
        if n is not None:
            return self.rfile.read(n) if n else b""
        chunks = []
        while True:                         # Transfer-Encoding: chunked
            line = self.rfile.readline(65537)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass                    # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def send(self, resp):
        self.send_response_only(resp.status, resp.reason or
                                REASONS.get(resp.status))
        names = {k.lower() for k, _ in resp.headers}
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        for k, v in resp.headers:
            self.send_header(k, v)      # `Connection: close` also ends it
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(resp.body)))
        if resp.close and "connection" not in names:
            self.send_header("Connection", "close")
        if resp.close:
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)
        self.wfile.flush()

    def reset(self):
        """Abort the connection: SO_LINGER 0 makes close() send a RST."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.connection.close()
        self.rfile.close()          # the last reference: the real close
        self.close_connection = True

    def hang(self, rec):
        """Never answer; return when the client gives up (or on shutdown)."""
        sock = self.connection
        while not self.server.state.stopping.is_set():
            r, _, _ = select.select([sock], [], [], 0.2)
            if r:
                try:
                    if not sock.recv(65536):
                        break               # client closed: it gave up
                except OSError:
                    break
        self.server.state.update(rec, end_ms=now_ms())
        self.close_connection = True

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("postgrest.py: %s\n" % (fmt % args))

    def do_POST(self):
        self.dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_POST

    def dispatch(self):
        url = urlsplit(self.path)
        try:
            if url.path.startswith("/_test/"):
                self.send(self.admin(url))
            else:
                self.api(url)
        except ApiError as e:
            self.send(e.response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            # A bug here must be loud, never look like a PostgREST answer.
            traceback.print_exc(file=sys.stderr)
            try:
                self.send(Response(500, jdump({
                    "message": "internal error in the test endpoint "
                               "(see its stderr)"}),
                    [("Content-Type", JSON_CT)], close=True))
            except OSError:
                self.close_connection = True
        finally:
            self.expect_100 = False     # per request

    # -- the API: faults around the gateway + PostgREST ----------------------

    def api(self, url):
        state = self.server.state
        path = unquote(url.path)
        table = None
        if path.startswith("/rest/v1/"):
            segs = path[len("/rest/v1/"):].split("/")
            if len(segs) == 1 and segs[0]:
                table = segs[0]
        rec = {
            "t_ms": now_ms(), "mono_ms": round(time.monotonic() * 1000, 3),
            "method": self.command, "path": url.path, "query": url.query,
            "params": dict(parse_qsl(url.query, keep_blank_values=True)),
            "table": table,
            "headers": {k.lower(): ", ".join(self.headers.get_all(k))
                        for k in self.headers.keys()},
            "body_size": None, "rows": None, "ids": None,
            "status": None, "code": None, "inserted": None, "fault": None,
            "real_status": None, "real_code": None, "end_ms": None,
        }
        state.record(rec)

        on_api = path == "/rest/v1" or path.startswith("/rest/v1/")
        body = None
        try:
            size = self.content_length()
        except ApiError as e:
            self.finish_with(rec, e.response)
            return
        if size is None:                    # chunked: size known once read
            body = self.read_body()
            size = len(body)
        fault = state.take_fault(table, size) if on_api else None
        if fault is not None:
            state.update(rec, fault=fault.action)
            self.log_message("fault %s on %s", fault.action, url.path)

        if fault is not None and not fault.after_insert:
            if fault.action == "reset":
                self.sleep(fault.delay_ms)
                if body is None and size:   # die mid-request: half the body
                    self.send_continue()
                    self.rfile.read(size // 2)
                self.reset()
                state.update(rec, body_size=size, end_ms=now_ms())
                return
            if fault.action == "respond" and fault.body_limit is not None:
                self.refuse_body(rec, fault, body)
                return
        if body is None:
            body = self.read_body()
        self.note_body(rec, body)

        if fault is not None and not fault.after_insert:
            self.sleep(fault.delay_ms)
            if fault.action == "hang":
                self.hang(rec)
                return
            if fault.action == "respond":
                self.finish_with(rec, fault.response())
                return
            # "delay": slept; now the real thing.

        resp = self.route(url, path, table, body)

        if fault is not None and fault.after_insert:
            # The request has been fully processed (rows committed or not, as
            # `resp` says); the client never learns it.
            state.update(rec, real_status=resp.status, real_code=resp.code,
                         inserted=resp.inserted)
            self.sleep(fault.delay_ms)
            if fault.action == "reset":
                self.reset()
                state.update(rec, end_ms=now_ms())
                return
            if fault.action == "hang":
                self.hang(rec)
                return
            if fault.action == "respond":
                resp = fault.response()
        self.finish_with(rec, resp)

    def sleep(self, ms):
        if ms > 0:
            self.server.state.stopping.wait(ms / 1000.0)

    def note_body(self, rec, body):
        rows = ids = None
        try:
            value = json.loads(body)
            items = value if isinstance(value, list) else [value]
            rows = len(items)
            ids = [v.get("id") for v in items if isinstance(v, dict)]
        except ValueError:
            pass
        self.server.state.update(rec, body_size=len(body), rows=rows, ids=ids)

    def finish_with(self, rec, resp):
        self.server.state.update(rec, status=resp.status, code=resp.code,
                                 end_ms=now_ms())
        if resp.inserted is not None:
            self.server.state.update(rec, inserted=resp.inserted)
        self.log_message('"%s" %s %s', self.requestline, resp.status,
                         resp.code or "")
        self.send(resp)

    def refuse_body(self, rec, fault, body):
        """A proxy's body-size limit: answer without taking the body."""
        resp = fault.response()
        self.server.state.update(rec, body_size=self.content_length())
        if body is None and not getattr(self, "expect_100", False):
            # The body is on its way: take it in before answering, or closing
            # with unread data would reset the connection under the answer.
            body = self.rfile.read(self.content_length())
        if body is not None:
            self.note_body(rec, body)
        self.sleep(fault.delay_ms)
        self.expect_100 = False         # never invite the body
        self.finish_with(rec, resp)
        self.linger_close()

    def linger_close(self):
        """Half-close, then discard what the client still sends (2 s at
        most): closing with unread data would reset the connection and could
        destroy the answer before the client reads it."""
        sock = self.connection
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 2
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    break
                if not sock.recv(65536):
                    break
        except OSError:
            pass

    def route(self, url, path, table, body):
        if not (path == "/rest/v1" or path.startswith("/rest/v1/")):
            # Supabase's gateway (Kong) for a path it has no route for.
            return gateway_error(404, "no Route matched with those values")
        try:
            role = self.gateway(url)
            if table is None or self.command != "POST":
                return self.not_implemented(path, table)
            return self.insert(url, table, body, role)
        except ApiError as e:
            return e.response

    # -- gateway ---------------------------------------------------------------

    def gateway(self, url):
        """The API key decides the role; Authorization may only repeat it."""
        key = self.headers.get("apikey")
        if key is None:
            key = dict(parse_qsl(url.query)).get("apikey")
        if not key:
            raise ApiError(gateway_error(401, "No API key found in request"))
        with self.server.state.lock:
            role = self.server.state.keys.get(key)
        if role is None:
            raise ApiError(gateway_error(401, "Invalid API key"))
        auth = self.headers.get("Authorization")
        if auth is None:
            return role
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token == key:
            return role
        # Anything else goes to PostgREST as a JWT, which it cannot verify.
        if scheme.lower() == "bearer" and not token:
            msg = "Empty JWT is sent in Authorization header"
        elif scheme.lower() == "bearer" and token.count(".") == 2:
            msg = "JWT cryptographic operation failed"
        else:
            parts = (token if scheme.lower() == "bearer" else auth).split(".")
            msg = f"Expected 3 parts in JWT; got {len(parts)}"
        raise ApiError(pgrst_error(401, "PGRST301", msg, headers=[(
            "WWW-Authenticate",
            f'Bearer error="invalid_token", error_description="{msg}"')]))

    def not_implemented(self, path, table):
        segs = path[len("/rest/v1"):].strip("/").split("/")
        if table is None and len(segs) > 1 and segs[0] != "rpc":
            return pgrst_error(404, "PGRST125",
                               "Invalid path specified in request URL")
        return pgrst_error(400, "PGRST127", "Feature not implemented",
                           details="this test endpoint implements only "
                                   "POST /rest/v1/<table> (insert)")

    # -- PostgREST's insert ----------------------------------------------------

    def insert(self, url, table, body, role):
        params = parse_qsl(url.query, keep_blank_values=True)
        first = {}
        for k, v in params:
            first.setdefault(k, v)
        prefs, applied = parse_prefer(self.headers.get_all("Prefer") or [])

        profile = self.headers.get("Content-Profile")
        if profile is not None and profile != SCHEMA:
            raise ApiError(pgrst_error(
                406, "PGRST106", f"Invalid schema: {profile}",
                hint=f"Only the following schemas are exposed: {SCHEMA}"))

        ctype = self.headers.get("Content-Type")
        mime = (ctype or "application/json").split(";")[0].strip().lower()
        if mime != "application/json":
            raise ApiError(pgrst_error(
                400, "PGRST102", f"Content-Type not acceptable: {mime}"))
        text, value = parse_json(body)

        if "columns" in first:
            cols = sorted(set(parse_column_list("columns", first["columns"])))
        else:
            cols, replacement = payload_keys(value)
            if replacement is not None:
                text = replacement
        on_conflict = None
        if "on_conflict" in first:
            on_conflict = parse_column_list("on_conflict", first["on_conflict"])

        dsn = self.server.dsn
        try:
            conn = psycopg2.connect(user=self.server.db_user,
                                    connect_timeout=5, **dsn)
        except psycopg2.Error as e:
            return connect_error_response(e)
        authed = role != "anon"
        try:
            cur = conn.cursor()
            tbl = load_table(cur, table)
            if tbl is None:
                return pgrst_error(
                    404, "PGRST205",
                    f"Could not find the table '{SCHEMA}.{table}' in the "
                    f"schema cache", hint=table_hint(cur, table))
            for c in cols:                      # sorted, like PostgREST's Set
                if c not in tbl.columns:
                    return pgrst_error(
                        400, "PGRST204",
                        f"Could not find the '{c}' column of '{table}' in "
                        f"the schema cache")
            conflict = None
            if "resolution" in prefs:
                conflict = (prefs["resolution"], on_conflict or tbl.pk)
                if not conflict[1]:
                    conflict = None             # no target: plain INSERT
            representation = prefs.get("return") == "representation"
            query = build_insert(tbl, cols, prefs.get("missing") == "default",
                                 conflict, representation)

            # The transaction PostgREST runs: role and request context first
            # (SET LOCAL ROLE through set_config(..., true)), then the role's
            # own settings, then the one statement.
            settings = role_settings(cur, role)
            headers = {k.lower(): v for k, v in self.headers.items()}
            cur.execute(
                "select set_config('role', %s, true),"
                " set_config('search_path', %s, true),"
                " set_config('request.jwt.claims', %s, true),"
                " set_config('request.method', %s, true),"
                " set_config('request.path', %s, true),"
                " set_config('request.headers', %s, true)",
                (role, SCHEMA, jdump({"role": role}), self.command,
                 "/" + table, jdump(headers)))
            for name, setting in settings:
                cur.execute("select set_config(%s, %s, true)", (name, setting))
            execute_with_body(cur, query, text)
            if representation:
                out = cur.fetchone()[0]
                inserted = len(json.loads(out))
            else:
                inserted = cur.rowcount     # rows ON CONFLICT skipped: not
            conn.commit()
        except psycopg2.Error as e:
            return pg_error_response(e, authed)
        finally:
            conn.close()

        total = str(inserted) if prefs.get("count") == "exact" else "*"
        headers = [("Content-Range", "*/" + total)]
        if applied:
            headers.append(("Preference-Applied", applied))
        if representation:
            headers.insert(0, ("Content-Type", JSON_CT))
            resp = Response(201, out, headers)
        else:
            resp = Response(201, b"", headers)  # return=minimal (the default)
        resp.inserted = inserted
        return resp

    # -- the admin API -----------------------------------------------------------

    def admin(self, url):
        body = self.read_body()
        try:
            spec = json.loads(body) if body.strip() else {}
        except ValueError:
            return admin_error(400, "body is not JSON")
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        route = ADMIN.get((self.command, url.path))
        if route is None:
            return admin_error(404, f"no admin route {self.command} {url.path}")
        try:
            return admin_ok(route(self.server, spec, query))
        except (ValueError, TypeError, KeyError) as e:
            return admin_error(400, str(e))
        except psycopg2.Error as e:
            status = 503 if getattr(e, "pgcode", None) is None else 400
            return admin_error(status, str(e).strip())


# ---------------------------------------------------------------------------
# The admin API (/_test/...): test control, loopback only, no key.
# ---------------------------------------------------------------------------

def admin_ok(obj):
    return Response(200, jdump(obj), [("Content-Type", JSON_CT)])


def admin_error(status, message):
    return Response(status, jdump({"error": message}),
                    [("Content-Type", JSON_CT)])


@contextlib.contextmanager
def admin_db(server):
    """A superuser connection to the test database (autocommit), closed on
    exit, and a cursor on it."""
    conn = psycopg2.connect(user=server.admin_user, connect_timeout=5,
                            **server.dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def ermd_table(cur, name):
    if not isinstance(name, str) or not name:
        raise ValueError("table: a table name in schema public is required")
    if load_table(cur, name) is None:
        raise ValueError(f"no table public.{name}")
    return name


def id_list(spec, query):
    ids = spec.get("ids")
    if ids is None and "id" in spec:
        ids = [spec["id"]]
    if ids is None and "ids" in query:
        ids = [i for i in query["ids"].split(",") if i]
    if ids is None:
        return None
    if not isinstance(ids, list):
        raise ValueError("ids must be a list")
    return [str(uuid.UUID(str(i))) for i in ids]   # ValueError if not UUIDs


def a_health(server, spec, query):
    try:
        with admin_db(server):
            db = True
    except psycopg2.Error:
        db = False
    return {"ok": True, "db": db}


def a_faults_add(server, spec, query):
    specs = spec if isinstance(spec, list) else [spec]
    faults = [Fault(s) for s in specs]          # validate all, then add
    st = server.state
    with st.lock:
        st.faults.extend(faults)
        return {"faults": [f.describe() for f in st.faults]}


def a_faults_get(server, spec, query):
    with server.state.lock:
        return {"faults": [f.describe() for f in server.state.faults]}


def a_faults_clear(server, spec, query):
    with server.state.lock:
        server.state.faults.clear()
    return {"faults": []}


def a_requests_get(server, spec, query):
    since = int(query.get("since", 0))
    table = query.get("table")
    with server.state.lock:
        reqs = [dict(r) for r in server.state.requests
                if r["seq"] > since and (table is None or r["table"] == table)]
    return {"requests": reqs}


def a_requests_clear(server, spec, query):
    with server.state.lock:
        server.state.requests.clear()
    return {"requests": []}


def a_count(server, spec, query):
    name = spec.get("table", query.get("table"))
    ids = id_list(spec, query)
    with admin_db(server) as cur:
        ermd_table(cur, name)
        t = sql.SQL("{}.{}").format(sql.Identifier(SCHEMA),
                                    sql.Identifier(name))
        if ids is None:
            cur.execute(sql.SQL("select count(*) from {}").format(t))
            return {"table": name, "count": cur.fetchone()[0]}
        cur.execute(sql.SQL("select id::text, count(*) from {} "
                            "where id = any(%s::uuid[]) group by id").format(t),
                    (ids,))
        found = dict(cur.fetchall())
    counts = {i: found.get(i, 0) for i in ids}
    return {"table": name, "count": sum(counts.values()), "counts": counts,
            "missing": [i for i in ids if not counts[i]]}


def a_poison_add(server, spec, query):
    code = spec.get("code", "22P02")
    if not re.fullmatch(r"[0-9A-Z]{5}", str(code)):
        raise ValueError("code must be a 5-character SQLSTATE")
    ids = id_list(spec, query)
    if not ids:
        raise ValueError("id or ids required")
    with admin_db(server) as cur:
        name = ermd_table(cur, spec.get("table"))
        for i in ids:
            cur.execute("""insert into erm_test.poison (tbl, id, code, message)
                           values (%s, %s, %s, %s)
                           on conflict (tbl, id) do update
                           set code = excluded.code, message = excluded.message""",
                        (name, i, code, spec.get("message")))
    return a_poison_get(server, {}, {})


def a_poison_get(server, spec, query):
    with admin_db(server) as cur:
        cur.execute("select tbl, id::text, code, message from erm_test.poison "
                    "order by tbl, id")
        rows = cur.fetchall()
    return {"poison": [{"table": t, "id": i, "code": c, "message": m}
                       for t, i, c, m in rows]}


def a_poison_clear(server, spec, query):
    with admin_db(server) as cur:
        cur.execute("delete from erm_test.poison")
    return {"poison": []}


def a_slow(server, spec, query):
    ms = int(spec.get("per_row_ms", 0))
    if ms < 0:
        raise ValueError("per_row_ms must be >= 0")
    with admin_db(server) as cur:
        name = ermd_table(cur, spec.get("table"))
        if ms:
            cur.execute("""insert into erm_test.slow (tbl, per_row_ms)
                           values (%s, %s) on conflict (tbl) do update
                           set per_row_ms = excluded.per_row_ms""", (name, ms))
        else:
            cur.execute("delete from erm_test.slow where tbl = %s", (name,))
        cur.execute("select tbl, per_row_ms from erm_test.slow order by tbl")
        return {"slow": dict(cur.fetchall())}


def current_timeout(cur, role):
    cur.execute("""select kv from pg_db_role_setting s
                     join pg_roles r on r.oid = s.setrole,
                          unnest(s.setconfig) kv
                    where r.rolname = %s and s.setdatabase = 0
                      and kv like 'statement_timeout=%%'""", (role,))
    row = cur.fetchone()
    return row[0].split("=", 1)[1] if row else None


def set_timeout(cur, role, value):
    r = sql.Identifier(role)
    if value is None:
        cur.execute(sql.SQL("alter role {} reset statement_timeout").format(r))
    else:
        cur.execute(sql.SQL("alter role {} set statement_timeout = {}").format(
            r, sql.Literal(str(value))))


def a_statement_timeout(server, spec, query):
    role = spec.get("role", "service_role")
    ms = spec.get("ms")
    with admin_db(server) as cur:
        cur.execute("select 1 from pg_roles where rolname = %s", (role,))
        if cur.fetchone() is None:
            raise ValueError(f"no role {role}")
        with server.state.lock:
            if role not in server.state.timeouts_changed:
                server.state.timeouts_changed[role] = current_timeout(cur, role)
        set_timeout(cur, role, None if ms is None else f"{int(ms)}ms")
        return {"role": role, "statement_timeout": current_timeout(cur, role)}


def a_keys_get(server, spec, query):
    with server.state.lock:
        return {"keys": dict(server.state.keys)}


def a_keys_set(server, spec, query):
    keys = {}
    for k in spec.get("secret", []):
        keys[str(k)] = "service_role"
    for k in spec.get("anon", []):
        keys[str(k)] = "anon"
    with server.state.lock:
        server.state.keys = keys
    return {"keys": keys}


def a_sql(server, spec, query):
    """Run SQL as the superuser (grants, test tables ...): test-only."""
    stmt = spec.get("sql")
    if not isinstance(stmt, str):
        raise ValueError("sql: a string is required")
    with admin_db(server) as cur:
        cur.execute(stmt)
        rows = cur.fetchall() if cur.description else []
    return {"rows": [list(r) for r in rows]}


def a_reset(server, spec, query):
    st = server.state
    with st.lock:
        st.faults.clear()
        st.requests.clear()
        st.keys = dict(st.initial_keys)
        changed, st.timeouts_changed = st.timeouts_changed, {}
    with admin_db(server) as cur:
        cur.execute("delete from erm_test.poison")
        cur.execute("delete from erm_test.slow")
        for role, value in changed.items():
            set_timeout(cur, role, value)
        if spec.get("truncate"):
            cur.execute("truncate public.erm_errors, public.erm_recoveries, "
                        "public.erm_alerts")
    return {"reset": True, "truncated": bool(spec.get("truncate"))}


ADMIN = {
    ("GET", "/_test/health"): a_health,
    ("POST", "/_test/faults"): a_faults_add,
    ("GET", "/_test/faults"): a_faults_get,
    ("DELETE", "/_test/faults"): a_faults_clear,
    ("GET", "/_test/requests"): a_requests_get,
    ("DELETE", "/_test/requests"): a_requests_clear,
    ("GET", "/_test/count"): a_count,
    ("POST", "/_test/count"): a_count,
    ("POST", "/_test/poison"): a_poison_add,
    ("GET", "/_test/poison"): a_poison_get,
    ("DELETE", "/_test/poison"): a_poison_clear,
    ("POST", "/_test/slow"): a_slow,
    ("POST", "/_test/statement_timeout"): a_statement_timeout,
    ("GET", "/_test/keys"): a_keys_get,
    ("POST", "/_test/keys"): a_keys_set,
    ("POST", "/_test/sql"): a_sql,
    ("POST", "/_test/reset"): a_reset,
}


# ---------------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(
        description="PostgREST-conformant insert endpoint (ermd tests)")
    ap.add_argument("--port", type=int, default=0,
                    help="port on 127.0.0.1 (0: pick one; printed as PORT n)")
    ap.add_argument("--secret-key", action="append", default=[],
                    help="secret key (sb_secret_...) -> service_role; repeatable")
    ap.add_argument("--anon-key", action="append", default=[],
                    help="publishable/anon key -> anon; repeatable")
    ap.add_argument("--pghost", default=os.environ.get("PGHOST"))
    ap.add_argument("--pgport", default=os.environ.get("PGPORT", "5432"))
    ap.add_argument("--dbname", default=os.environ.get("PGDATABASE",
                                                        "ermd_test"))
    ap.add_argument("--db-user", default="authenticator",
                    help="role the API connects as (default authenticator)")
    ap.add_argument("--admin-user", default="postgres",
                    help="superuser for /_test/ (default postgres)")
    ap.add_argument("--die-with-parent", action="store_true",
                    help="exit when the process that started it dies "
                         "(prctl PR_SET_PDEATHSIG), even by SIGKILL")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="log every request to stderr")
    a = ap.parse_args()
    if a.die_with_parent:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
        if os.getppid() == 1:           # the parent is already gone
            sys.exit(1)
    if not a.secret_key:
        ap.error("at least one --secret-key is required")
    if not a.pghost:
        ap.error("--pghost (or $PGHOST) is required")

    keys = {k: "service_role" for k in a.secret_key}
    keys.update({k: "anon" for k in a.anon_key})
    server = Server(("127.0.0.1", a.port), Handler)
    server.state = State(keys)
    server.dsn = {"host": a.pghost, "port": a.pgport, "dbname": a.dbname,
                  "application_name": "postgrest-test"}
    server.db_user = a.db_user
    server.admin_user = a.admin_user
    server.verbose = a.verbose

    def stop(signum, frame):
        server.state.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.state.stopping.set()
        server.server_close()


if __name__ == "__main__":
    main()
