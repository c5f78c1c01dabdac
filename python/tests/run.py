#!/usr/bin/env python3
"""Runs the Python package's tests (pytest over python/tests) with the
installed pattern_engine, as ctest does:

    .venv/bin/python python/tests/run.py --engine build/pattern-engine \\
        [--real-ticks ../shared/data/real/binance_trades.csv] [PYTEST ARGS]

scripts/install-deps.sh builds and installs the package into .venv (pip
install ./python). Exit status: pytest's, or 77 (ctest's skip code) when
the package is not installed because it could not be built, with the
reason.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FAILED_MARK = os.path.join(ROOT, ".venv", ".pattern_engine.failed")


def main() -> int:
    try:
        import pytest
    except ImportError as exc:
        print(f"SKIP: pytest is not installed in {sys.executable} ({exc}); "
              "scripts/install-deps.sh installs it (requirements-test.txt)")
        return 77
    try:
        import pattern_engine
    except ImportError as exc:
        why = "its build failed (see scripts/install-deps.sh's output)" \
            if os.path.exists(FAILED_MARK) else "scripts/install-deps.sh has not built it"
        print(f"SKIP: the pattern_engine package is not installed in {sys.executable}: "
              f"{why} ({exc})")
        return 77
    where = os.path.dirname(os.path.abspath(pattern_engine.__file__))
    print(f"testing pattern_engine {pattern_engine.__version__} from {where}")
    return int(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", HERE, HERE,
                            *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
