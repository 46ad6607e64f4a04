"""Fixtures of the legacy black-box suite: a fresh simulator per test and, for cofre-legacy's
tests, the delivery stores they run against.

cofre-legacy's store tests run once per store named in COFRE_LEGACY_STORES (comma list,
default "sqlite"; `make test-legacy-postgres` sets "postgres"): a test taking the `store`
argument is parametrised here, so the same scenarios run on both stores without copies. The
PostgreSQL cluster (tests/e2e/pg_cluster.py) is started once per session, only when a test
needs it.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, "..", "e2e"))

from adapterhelp import STORES  # noqa: E402
from simhelp import SimProcess  # noqa: E402


def pytest_generate_tests(metafunc):
    if "store" in metafunc.fixturenames:
        metafunc.parametrize("store", STORES, scope="session")


@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL cluster for the session, with the roles of docs/postgres.md and
    a service role for cofre-legacy (legacy_app, member of cofre_legacy_service)."""
    from adapterhelp import LegacyPg
    cluster = LegacyPg().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def make_sim(tmp_path):
    """Starts a simulator with extra environment. Afterwards every one is stopped, and each of
    its runs must have exited 0 (SIGTERM) without a sanitizer report."""
    started = []

    def make(**env):
        sim = SimProcess(tmp_path, **env).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
        for rc, flagged in sim.exits:
            assert rc == 0 and not flagged, f"simulator exited {rc}: {flagged}"


@pytest.fixture
def sim(make_sim):
    """A simulator with the default rules and a 1000.00 amount limit."""
    return make_sim(COFRE_SIM_AMOUNT_MAX=100000, COFRE_SIM_SEED=7)
