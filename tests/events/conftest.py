"""Fixtures of the events suite: `stack` starts the processes a test needs (cofre-kafka-dev,
cofre-core, cofre-audit) in the test's own directory and, at teardown, stops each one still
running with SIGTERM: each must exit 0 (a process a test killed on purpose is left alone).

Store-dependent tests also take `backend` (stores.py): it is parametrised by COFRE_TEST_DBS
(default "sqlite"), so such a test runs once per store, and its stack's cofre-core and
cofre-audit get databases of that store (one core database and one audit database per stack,
shared by the processes it starts, as one SQLite file is). Other tests run on SQLite."""

import os

import pytest

import stores
from eventlib import Audit, Core, KafkaDev


class Stack:
    def __init__(self, workdir, backend=stores.SQLITE):
        self.workdir = workdir
        self.backend = backend
        self.procs = []
        self.kafka_dev = None
        self.core_db = None
        self.audit_db = None

    def _dir(self, name):
        d = os.path.join(str(self.workdir), name)
        os.makedirs(d, exist_ok=True)
        return d

    def kafka(self, **env):
        self.kafka_dev = KafkaDev(self._dir("kafka"), **env)
        self.procs.append(self.kafka_dev)
        return self.kafka_dev.start()

    def core(self, ready=True, db=None, **env):
        if db is None:
            if self.core_db is None:
                self.core_db = self.backend.new_db(self._dir("core"), "core")
            db = self.core_db
        p = Core(self._dir("core"), self.kafka_dev.bootstrap if self.kafka_dev else "", db=db,
                 backend=self.backend, **env)
        self.procs.append(p)
        return p.start(ready)

    def audit(self, ready=True, db=None, **env):
        brokers = env.pop("brokers", self.kafka_dev.bootstrap if self.kafka_dev else "")
        if db is None:
            if self.audit_db is None:
                self.audit_db = self.backend.new_db(self._dir("audit"), "audit")
            db = self.audit_db
        p = Audit(self._dir("audit"), brokers, db=db, backend=self.backend, **env)
        self.procs.append(p)
        return p.start(ready)

    def finish(self):
        problems = []
        for p in reversed(self.procs):
            if p.proc is None or p.returncode is not None:
                continue
            try:
                rc = p.stop()
            except AssertionError as e:
                problems.append(str(e))
                continue
            if rc != 0:
                problems.append(f"{p.name} exited {rc} on SIGTERM: {p.stderr()[-2000:]}")
        return problems


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", stores.selected_names(), indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request, tmp_path_factory):
    b = stores.BACKENDS[request.param]()
    b.start(tmp_path_factory.mktemp("backend-" + b.name))
    yield b
    b.stop()


@pytest.fixture
def postgres(backend):
    """The backend, for tests that only make sense on PostgreSQL (skipped on the others)."""
    if backend.name != "postgres":
        pytest.skip("PostgreSQL only (COFRE_TEST_DBS=postgres)")
    return backend


@pytest.fixture
def stack(request, tmp_path):
    backend = (request.getfixturevalue("backend") if "backend" in request.fixturenames
               else stores.SQLITE)
    s = Stack(tmp_path, backend)
    yield s
    problems = s.finish()
    assert not problems, problems
