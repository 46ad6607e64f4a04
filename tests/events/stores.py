"""The stores the events suite runs on: SQLite (the embedded default) and PostgreSQL (a
throwaway cluster from tests/e2e/pg_cluster.py, started once per session when a test asks for
it).

Store-dependent tests take the `backend` fixture (conftest.py), which is parametrised by
COFRE_TEST_DBS (comma list, default "sqlite"): the same test runs once per store, not copied.
A backend makes databases (COFRE_DB values) for cofre-core and cofre-audit and reads and
tampers with them the way an operator (or an attacker with the owner's password) would.

PostgreSQL roles, as docs/postgres.md and docs/audit.md describe them: `cofre_owner` owns
every database and runs the migrations; cofre-core's replicas log in as `cofre_app` (member of
cofre_core_service), cofre-audit's as `cofre_audit` (member of cofre_audit_service); the
harness reads as the superuser.
"""

import itertools
import os
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import pg_cluster  # noqa: E402

AUDIT_USER = "cofre_audit"
TRIGGERS_OFF = "ALTER TABLE audit_records DISABLE TRIGGER USER;"
TRIGGERS_ON = "ALTER TABLE audit_records ENABLE TRIGGER USER;"


def sqlite_path(db):
    assert db.startswith("sqlite:"), db
    return db[len("sqlite:"):]


class SqliteBackend:
    name = "sqlite"

    def start(self, workdir):
        pass

    def stop(self):
        pass

    def new_db(self, workdir, kind):
        """A COFRE_DB value for a fresh database of kind "core" or "audit" under workdir."""
        return "sqlite:" + os.path.join(str(workdir), f"{kind}.db")

    def query(self, db, sql, params=()):
        conn = sqlite3.connect(f"file:{sqlite_path(db)}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    def owner_script(self, db, script):
        """Runs SQL with every right the database file gives (its triggers still apply)."""
        conn = sqlite3.connect(sqlite_path(db), timeout=10)
        try:
            conn.executescript(script)
            conn.commit()
        finally:
            conn.close()

    def tampered_copy(self, db, name, sql):
        """A copy of an audit database with sql applied around the append-only triggers."""
        path = os.path.join(os.path.dirname(sqlite_path(db)), f"{name}.db")
        src = sqlite3.connect(sqlite_path(db))
        dst = sqlite3.connect(path)
        src.backup(dst)
        src.close()
        dst.executescript("DROP TRIGGER audit_records_no_update; "
                          "DROP TRIGGER audit_records_no_delete;" + sql)
        dst.commit()
        dst.close()
        return "sqlite:" + path

    # Published core outbox rows are the prefix up to a watermark (migrations/sqlite/0003).
    OUTBOX_SQL = ("SELECT o.seq, o.event_id, o.seq <= c.published_seq AS p "
                  "FROM outbox o, outbox_cursor c ORDER BY o.seq")

    def unpublish_outbox(self, db):
        self.owner_script(db, "UPDATE outbox_cursor SET published_seq = 0;")


class PostgresBackend:
    name = "postgres"

    def __init__(self):
        self.cluster = None
        self._ids = itertools.count(1)

    def start(self, workdir):
        c = pg_cluster.PgCluster().init().start().create_roles()
        c.sql("CREATE ROLE cofre_audit_service NOLOGIN")
        c.sql(f"CREATE ROLE {AUDIT_USER} LOGIN IN ROLE cofre_audit_service")
        self.cluster = c

    def stop(self):
        if self.cluster is not None:
            self.cluster.destroy()
            self.cluster = None

    def migrate(self, kind, url):
        """`cofre-<kind> migrate` on url (an owner URL, normally): the CompletedProcess."""
        from eventlib import binary, base_env
        return subprocess.run([binary(f"cofre-{kind}"), "migrate"],
                              env=base_env(COFRE_DB=url), capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    def new_db(self, workdir, kind, migrate=True):
        name = self.cluster.create_db(f"{kind}_{os.getpid()}_{next(self._ids)}")
        if migrate:
            r = self.migrate(kind, self.cluster.url(name, user=pg_cluster.OWNER))
            assert r.returncode == 0, f"cofre-{kind} migrate: {r.stdout} {r.stderr}"
        return self.cluster.url(name, user=AUDIT_USER if kind == "audit" else pg_cluster.APP)

    @staticmethod
    def dbname(db):
        return db.rsplit("/", 1)[-1].split("?", 1)[0]

    def connect(self, db, user=pg_cluster.SUPER):
        return self.cluster.connect(self.dbname(db), user)

    def query(self, db, sql, params=(), user=pg_cluster.SUPER):
        conn = self.connect(db, user)
        try:
            with conn.cursor() as cur:
                cur.execute(sql.replace("?", "%s") if params else sql, params or None)
                names = [d[0] for d in cur.description]
                return [{k: bytes(v) if isinstance(v, memoryview) else v
                         for k, v in zip(names, row)} for row in cur.fetchall()]
        finally:
            conn.close()

    def owner_script(self, db, script, user=pg_cluster.OWNER):
        conn = self.connect(db, user)
        try:
            with conn.cursor() as cur:
                cur.execute(script)
        finally:
            conn.close()

    def tampered_copy(self, db, name, sql):
        """A copy of an audit database, tampered with by its owner: it switches the
        append-only triggers off (which only an owner can), changes rows, and on again."""
        copy = f"{self.dbname(db)}_{name}"
        self.cluster.sql(f"CREATE DATABASE {copy} TEMPLATE {self.dbname(db)} "
                         f"OWNER {pg_cluster.OWNER}")
        url = self.cluster.url(copy, user=AUDIT_USER)
        self.owner_script(url, "BEGIN;" + TRIGGERS_OFF + sql + TRIGGERS_ON + "COMMIT;")
        return url

    OUTBOX_SQL = ("SELECT seq, event_id, published_at IS NOT NULL AS p FROM outbox "
                  "ORDER BY seq")

    def unpublish_outbox(self, db):
        self.owner_script(db, "BEGIN; ALTER TABLE outbox DISABLE TRIGGER USER; "
                              "UPDATE outbox SET published_at = NULL; "
                              "ALTER TABLE outbox ENABLE TRIGGER USER; COMMIT;")


BACKENDS = {"sqlite": SqliteBackend, "postgres": PostgresBackend}
SQLITE = SqliteBackend()


def selected_names():
    # Interned: pytest keeps a parametrised session fixture only while the parameter is the
    # same object (see tests/e2e/cofre_backends.py).
    names = [sys.intern(n.strip())
             for n in os.environ.get("COFRE_TEST_DBS", "sqlite").split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise ValueError(f"COFRE_TEST_DBS={os.environ.get('COFRE_TEST_DBS')!r}: unknown "
                         f"{unknown}; known: {sorted(BACKENDS)}")
    return names
