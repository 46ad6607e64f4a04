"""Fixtures of the gateway suite (tests/gateway): real NGINX in front of real cofre-core replicas.

`platform` is one module's pair of replicas on one SQLite file behind a gateway whose rate
limits are raised out of the way (the limits have their own tests, on the defaults).
`make_platform` builds others (other limits, timeouts, replica counts) for one test. Every
process is stopped after its test or module, and must exit 0 unless the test killed it.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gw import Platform  # noqa: E402

HIGH_LIMITS = {"COFRE_GW_API_RATE": "1000000r/s", "COFRE_GW_API_BURST": "1000000",
               "COFRE_GW_CONN_MAX": "1000"}


@pytest.fixture(scope="module")
def platform():
    p = Platform(replicas=2, gw_env=HIGH_LIMITS)
    yield p
    p.close()


@pytest.fixture
def make_platform():
    made = []

    def make(**kw):
        p = Platform(**kw)
        made.append(p)
        return p

    yield make
    problems = []
    for p in made:
        try:
            p.close()
        except AssertionError as e:
            problems.append(str(e))
    assert not problems, "; ".join(problems)
