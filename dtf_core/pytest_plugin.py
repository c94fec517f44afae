"""Public path of dtf's pytest plugin (`pytest -p dtf_core.pytest_plugin`); the code lives in
:mod:`dtf_core.testing.plugin`. Kept because users' pytest command lines name this path."""

from dtf_core.testing.plugin import (
    pytest_addoption,
    pytest_collection_finish,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_runtest_protocol,
    pytest_sessionstart,
)

__all__ = [
    "pytest_addoption",
    "pytest_collection_finish",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_runtest_protocol",
    "pytest_sessionstart",
]
