"""pytest fixtures for testing a mail setup against the TECH 2U replies.

Installed with tech2u-mta and loaded by pytest on its own (``pytest11``
entry point).  Each test gets a server of its own, on a port the system
picks, with a mail store in the test's ``tmp_path``: tests never share one,
with or without pytest-xdist.

``tech2u_policies``
    The policies the server starts with; the demo world unless a test or
    conftest overrides this fixture (``tech2u_mta.policy.from_data`` builds
    a set from plain data).
``tech2u_server``
    The running server (a ``TestServer``): ``host``, ``port``, methods that
    change its policies while it runs, and ``messages()`` to read what was
    delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .policy import Policies, load_folder, packaged_folder
from .testing import TestServer, make_config, threaded


@pytest.fixture
def tech2u_policies() -> Policies:
    return load_folder(packaged_folder(), 100 << 20)


@pytest.fixture
def tech2u_server(tech2u_policies: Policies, tmp_path: Path) -> Iterator[TestServer]:
    config = make_config(tmp_path / "tech2u-mailstore")
    with threaded(config, tech2u_policies) as server:
        yield server
