"""Benchmarks, run by hand from the repository root as modules (`python -m bench.soak --help`), so they
import `broadcaster` and the tests' helpers (`tests.support`) from this checkout."""
