"""Shared pytest setup: the `--runslow` switch for tests marked `@pytest.mark.slow`.

The `slow` marker itself is declared in pyproject.toml (`--strict-markers` is on).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked @pytest.mark.slow (long reproductions, sweeps)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def yosys() -> str:
    """The YoWASP yosys `memprop build` runs (its own lookup); the test is skipped without it."""
    from memprop.boards.build import BuildError, toolchain_env

    try:
        return toolchain_env({})["YOSYS"]
    except BuildError as exc:
        pytest.skip(str(exc))
