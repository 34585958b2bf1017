"""Lens quality on synthetic worlds with known truth (issue 18): `python -m bench.truth`."""
