"""Registry backends for the auth suite.

The suite runs once per backend named in COFRE_TEST_DBS (comma list, default "sqlite"), as
tests/e2e does for cofre-core: every test that starts a cofre-auth gets a fresh registry of
that backend. A backend gives each server its COFRE_DB value and reads the registry back for
the tests (the same tables in both stores).

PostgreSQL: a throwaway cluster per session (tests/e2e/pg_cluster.py) with the roles of
docs/postgres.md: `cofre_owner` owns each database and runs `cofre-auth migrate`; the servers
and the command line connect as `cofre_app`, a login member of `cofre_auth_service`, which holds
only the grants the migration gives; the harness reads as the superuser.
"""

import itertools
import os
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import pg_cluster  # noqa: E402  (tests/e2e's harness, shared)

OWNER = pg_cluster.OWNER
APP = pg_cluster.APP  # the login role of the replicas; a member of cofre_auth_service
SERVICE_ROLE = "cofre_auth_service"


def _bin(name):
    d = os.environ.get("COFRE_BIN_DIR") or os.path.join(HERE, "..", "..", "build", "bin")
    return os.path.join(d, name)


def migrate_env(url):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COFRE_DB": url}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def run_migrate(url, timeout=60):
    """`cofre-auth migrate` on url: the CompletedProcess (text)."""
    return subprocess.run([_bin("cofre-auth"), "migrate"], env=migrate_env(url),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class SqliteDb:
    """The embedded default: one SQLite file per server."""

    name = "sqlite"

    def start(self):
        pass

    def stop(self):
        pass

    def new_db(self, workdir):
        return "sqlite:" + os.path.join(str(workdir), "auth.db")

    def query(self, db, sql):
        assert db.startswith("sqlite:"), db
        conn = sqlite3.connect("file:" + db[len("sqlite:"):] + "?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def stored_text(self, db):
        """Everything the registry stores, as text (to prove a secret is not in it)."""
        with open(db[len("sqlite:"):], "rb") as f:
            return f.read().decode("latin-1")


class PostgresDb:
    """A throwaway cluster (or one given), one database per server, migrated as the owner."""

    name = "postgres"

    def __init__(self, cluster=None):
        self.cluster = cluster
        self.own_cluster = cluster is None
        self._ids = itertools.count(1)

    def start(self):
        if self.cluster is None:
            self.cluster = pg_cluster.PgCluster().init().start()
        self.create_roles(self.cluster)

    @staticmethod
    def create_roles(cluster):
        have = {r[0] for r in cluster.sql("SELECT rolname FROM pg_roles")}
        if OWNER not in have:
            cluster.sql(f"CREATE ROLE {OWNER} LOGIN")
        if SERVICE_ROLE not in have:
            cluster.sql(f"CREATE ROLE {SERVICE_ROLE} NOLOGIN")
        if APP not in have:
            cluster.sql(f"CREATE ROLE {APP} LOGIN")
        cluster.sql(f"GRANT {SERVICE_ROLE} TO {APP}")

    def stop(self):
        if self.own_cluster and self.cluster is not None:
            self.cluster.destroy()
        self.cluster = None

    def create_db(self):
        """An empty database owned by the owner role; returns its name."""
        return self.cluster.create_db(f"auth_{os.getpid()}_{next(self._ids)}")

    def owner_url(self, name):
        return self.cluster.url(name, user=OWNER)

    def new_db(self, workdir):
        name = self.create_db()
        r = run_migrate(self.owner_url(name))
        if r.returncode != 0:
            raise RuntimeError(f"cofre-auth migrate failed: {r.stdout!r} {r.stderr!r}")
        return self.cluster.url(name, user=APP)

    @staticmethod
    def dbname(db):
        return db.rsplit("/", 1)[-1].split("?", 1)[0]

    def query(self, db, sql):
        return self.cluster.sql(sql, db=self.dbname(db)) or []

    def stored_text(self, db):
        rows = self.query(db, "SELECT c::text FROM clients c UNION ALL "
                              "SELECT k::text FROM signing_keys k UNION ALL "
                              "SELECT o::text FROM outbox o")
        return "\n".join(r[0] for r in rows)


BACKENDS = {"sqlite": SqliteDb, "postgres": PostgresDb}


def selected_names():
    """The backend names of COFRE_TEST_DBS, validated."""
    raw = os.environ.get("COFRE_TEST_DBS", "sqlite")
    # Interned: pytest keeps a parametrised session fixture only while each test's parameter
    # is the same object, and os.environ hands out a new string on every read.
    names = [sys.intern(n.strip()) for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise ValueError(f"COFRE_TEST_DBS={raw!r}: unknown backend(s) {unknown}; "
                         f"known: {sorted(BACKENDS)}")
    return names
