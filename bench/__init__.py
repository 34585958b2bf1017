"""StemeDB benchmarks: run with `python -m bench` (or `make bench`); not part of the tests."""
