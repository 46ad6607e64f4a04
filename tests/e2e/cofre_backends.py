"""Database backends for the black-box suite.

The suite runs once per backend named in COFRE_TEST_DBS (comma list, default "sqlite"). A
backend gives each server a fresh database (the COFRE_DB value) and answers "database
snapshot" queries straight from the store, so a test can prove that a rejected request left
every table as it was.

To add a backend (the PostgreSQL issue): subclass Backend, implement start/stop (a
throwaway cluster for the whole session), new_db (one database per server) and query
(read-only SQL returning rows of tuples), and register it in BACKENDS. The tables and
columns are the same in every store, so snapshot() works unchanged.
"""

import itertools
import os
import sys
import sqlite3
import subprocess

import pg_cluster

# The four ledger tables whose row counts prove "nothing changed".
LEDGER_TABLES = ("accounts", "transfers", "idempotency", "outbox")


class Backend:
    """One kind of store. Instances live for the whole pytest session."""

    name = "?"

    def start(self, workdir):
        """Starts what the backend needs for the session (workdir: a private temp dir)."""

    def stop(self):
        """Stops what start() started."""

    def new_db(self, workdir):
        """Returns the COFRE_DB value of a fresh, empty database under workdir."""
        raise NotImplementedError

    def query(self, db, sql):
        """Runs one read-only SQL statement on db (a COFRE_DB value); returns a list of tuples."""
        raise NotImplementedError

    def snapshot(self, db):
        """Row counts of the ledger tables and every account's posted/pending totals."""
        counts = {t: self.query(db, f"SELECT count(*) FROM {t}")[0][0] for t in LEDGER_TABLES}
        rows = self.query(
            db,
            "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending "
            "FROM accounts ORDER BY id",
        )
        return {"counts": counts, "accounts": {r[0]: tuple(r[1:]) for r in rows}}

    def transfer_ids(self, db):
        """Every transfer id in the store, as a list (duplicates kept, to catch them)."""
        return [r[0] for r in self.query(db, "SELECT id FROM transfers")]


class SqliteBackend(Backend):
    """The embedded default: one SQLite file per server, read here in read-only mode."""

    name = "sqlite"

    def new_db(self, workdir):
        return "sqlite:" + os.path.join(str(workdir), "core.db")

    @staticmethod
    def path(db):
        assert db.startswith("sqlite:"), db
        return db[len("sqlite:"):]

    def query(self, db, sql):
        uri = "file:" + self.path(db) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


class PostgresBackend(Backend):
    """A throwaway PostgreSQL cluster for the session (tests/e2e/pg_cluster.py), one database
    per server. As in production, the schema is migrated by `cofre-core migrate` as the owner
    role, and the servers connect as the service role (cofre_app), which holds only the grants
    the migration gives cofre_core_service. The harness reads as the superuser."""

    name = "postgres"

    def __init__(self):
        self.cluster = None
        self._ids = itertools.count(1)
        self._conns = {}

    def start(self, workdir):
        self.cluster = pg_cluster.PgCluster().init().start().create_roles()

    def stop(self):
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        if self.cluster is not None:
            self.cluster.destroy()
            self.cluster = None

    def create_db(self):
        """An empty database owned by the owner role; returns its name."""
        return self.cluster.create_db(f"cofre_{os.getpid()}_{next(self._ids)}")

    def migrate(self, url, timeout=60):
        """Runs `cofre-core migrate` on url; returns the CompletedProcess."""
        from cofre_server import binary
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COFRE_DB": url}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        return subprocess.run([binary(), "migrate"], env=env, capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def new_db(self, workdir):
        name = self.create_db()
        r = self.migrate(self.cluster.url(name, user=pg_cluster.OWNER))
        if r.returncode != 0:
            raise RuntimeError(f"cofre-core migrate failed: {r.stdout!r} {r.stderr!r}")
        return self.cluster.url(name)

    @staticmethod
    def dbname(db):
        return db.rsplit("/", 1)[-1].split("?", 1)[0]

    def query(self, db, sql):
        import psycopg2
        name = self.dbname(db)
        for attempt in range(2):
            conn = self._conns.get(name)
            if conn is None or conn.closed:
                conn = self._conns[name] = self.cluster.connect(name)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetchall()
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                conn.close()  # the cluster was restarted under it: connect again, once
                if attempt == 1:
                    raise


BACKENDS = {"sqlite": SqliteBackend, "postgres": PostgresBackend}


def selected_names():
    """The backend names of COFRE_TEST_DBS, validated."""
    # Interned: pytest keeps a parametrised session fixture (the database cluster) only while
    # the parameter is the same object, so equal but distinct strings would restart it.
    names = [sys.intern(n.strip())
             for n in os.environ.get("COFRE_TEST_DBS", "sqlite").split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise ValueError(
            f"COFRE_TEST_DBS={os.environ.get('COFRE_TEST_DBS')!r}: unknown backend(s) {unknown}; "
            f"known: {sorted(BACKENDS)}"
        )
    return names
