"""Fixtures of the cofre-legacy-sim black-box suite: a fresh simulator per test."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from simhelp import SimProcess  # noqa: E402


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
