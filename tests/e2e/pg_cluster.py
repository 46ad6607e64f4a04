"""A throwaway PostgreSQL cluster and PgBouncer for the black-box suite.

PostgreSQL refuses to run as root, so when the suite runs as root the server (and PgBouncer)
run as the `postgres` user in a private temp dir; otherwise as the current user. The cluster
listens on a private loopback port and a private socket dir, with the production durability
settings (fsync, synchronous_commit=on). Roles, as docs/postgres.md describes them:

- `postgres`: the superuser, used only by the harness to create databases and to look.
- `cofre_owner`: owns each database and its schema; `cofre-core migrate` runs as it.
- `cofre_app`: the replicas' login role, a member of `cofre_core_service` (the grants).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
OWNER = "cofre_owner"
APP = "cofre_app"
SUPER = "postgres"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user():
    """(preexec_fn, uid, gid) to run server processes as postgres when we are root."""
    if os.geteuid() != 0:
        return None, os.getuid(), os.getgid()
    pw = pwd.getpwnam("postgres")

    def demote():
        os.setgid(pw.pw_gid)
        os.initgroups("postgres", pw.pw_gid)
        os.setuid(pw.pw_uid)

    return demote, pw.pw_uid, pw.pw_gid


def _run(args, timeout=120, check=True, env=None):
    demote, _uid, _gid = _as_server_user()
    r = subprocess.run(args, preexec_fn=demote, capture_output=True, timeout=timeout,
                       env=env, stdin=subprocess.DEVNULL, cwd="/")
    if check and r.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return r


class PgCluster:
    """One initdb'd cluster: start(), stop(), restart(), sql(), url()."""

    def __init__(self, settings=None):
        self.dir = None
        self.port = None
        self.settings = dict(settings or {})

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def sockdir(self):
        return os.path.join(self.dir, "sock")

    def init(self):
        demote, uid, gid = _as_server_user()
        self.dir = tempfile.mkdtemp(prefix="cofre-pg-")
        os.makedirs(self.sockdir)
        for p in (self.dir, self.sockdir):
            os.chown(p, uid, gid)
            os.chmod(p, 0o700)
        self.port = free_port()
        _run([f"{PG_BIN}/initdb", "-D", self.data, "-U", SUPER, "-A", "trust", "-E", "UTF8",
              "--locale=C.UTF-8", "--no-sync"])
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockdir}'",
            "max_connections": "300",
            "shared_buffers": "128MB",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_lock_waits": "on",
        }
        conf.update(self.settings)
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        return self

    def start(self):
        _run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
              "-w", "-t", "60", "start"])
        return self

    def stop(self, mode="fast"):
        if self.dir and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            _run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                 check=False)

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def destroy(self):
        self.stop("immediate")
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def running(self):
        return bool(self.dir) and os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def pids(self):
        """The postmaster's pid and its children's (for SIGSTOP/SIGCONT in outage tests)."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            master = int(f.readline())
        out = [master]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                out.append(int(entry))
        return out

    def signal_all(self, sig):
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def log_tail(self, n=4000):
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    # -- access --------------------------------------------------------------------------

    def url(self, db, user=APP, port=None, host="127.0.0.1"):
        return f"postgresql://{user}@{host}:{port or self.port}/{db}"

    def connect(self, db="postgres", user=SUPER):
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, dbname=db,
                                connect_timeout=10)
        conn.autocommit = True
        return conn

    def sql(self, statement, db="postgres", user=SUPER):
        """Runs one statement; returns its rows (or None)."""
        conn = self.connect(db, user)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def create_roles(self):
        self.sql(f"CREATE ROLE {OWNER} LOGIN")
        self.sql("CREATE ROLE cofre_core_service NOLOGIN")
        self.sql(f"CREATE ROLE {APP} LOGIN IN ROLE cofre_core_service")
        return self

    def create_db(self, name, owner=OWNER):
        self.sql(f"CREATE DATABASE {name} OWNER {owner}")
        # PostgreSQL 15: public belongs to pg_database_owner, so the owner may create there.
        return name


class PgBouncer:
    """PgBouncer in transaction pooling mode in front of a cluster (auth trust, loopback)."""

    def __init__(self, cluster, pool_size=4, pool_mode="transaction"):
        self.cluster = cluster
        self.pool_size = pool_size
        self.pool_mode = pool_mode
        self.port = None
        self.proc = None

    def start(self):
        c = self.cluster
        self.port = free_port()
        ini = os.path.join(c.dir, f"pgbouncer-{self.port}.ini")
        users = os.path.join(c.dir, "pgbouncer-users.txt")
        with open(users, "w") as f:
            for u in (APP, OWNER, SUPER):
                f.write(f'"{u}" ""\n')
        with open(ini, "w") as f:
            f.write(f"""[databases]
* = host=127.0.0.1 port={c.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = {self.pool_mode}
default_pool_size = {self.pool_size}
max_client_conn = 500
server_reset_query =
server_check_delay = 0
ignore_startup_parameters = extra_float_digits
logfile = {os.path.join(c.dir, f"pgbouncer-{self.port}.log")}
""")
        _demote, uid, gid = _as_server_user()
        for p in (ini, users):
            os.chown(p, uid, gid)
        demote, _u, _g = _as_server_user()
        self.proc = subprocess.Popen(["/usr/sbin/pgbouncer", ini], preexec_fn=demote,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd="/")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}")
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not listen within 15 s")

    def url(self, db, user=APP):
        return self.cluster.url(db, user=user, port=self.port)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
