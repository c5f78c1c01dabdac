"""Paths the tests share: the repository, the CLI to compare against, the
tick files. Options (ctest passes them; see python/tests/run.py):

    --engine PATH      the pattern-engine binary (default: build/pattern-engine)
    --real-ticks PATH  the real trades file (default: ../shared/data/real/
                       binance_trades.csv beside the repository)
"""

import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLE = os.path.join(ROOT, "fixtures", "sample_ticks.csv")
MODELS = os.path.join(ROOT, "models")

# The pandas reference of the CLI's own features test, reused as the oracle.
sys.path.insert(0, os.path.join(ROOT, "tests"))


def pytest_addoption(parser):
    parser.addoption("--engine", default=os.path.join(ROOT, "build", "pattern-engine"))
    parser.addoption("--real-ticks", default=os.path.join(
        ROOT, "..", "shared", "data", "real", "binance_trades.csv"))


@pytest.fixture(scope="session")
def cli(request):
    path = request.config.getoption("--engine")
    if not os.access(path, os.X_OK):
        pytest.skip(f"the pattern-engine binary is not at {path} (build it, or pass --engine)")
    return path


@pytest.fixture(scope="session")
def real_ticks(request):
    path = request.config.getoption("--real-ticks")
    if not os.path.exists(path):
        pytest.skip(f"real trades file {path} is absent; the real-data checks are skipped")
    return path


def in_threads(work, args) -> list:
    """Runs work(a) for each a in args, each in its own thread, all at once;
    returns the exceptions they raised."""
    import threading
    errors = []

    def guarded(a):
        try:
            work(a)
        except Exception as exc:  # returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
