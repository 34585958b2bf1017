"""Usage errors are exit 2 with a hint, decided before any request is sent."""

from __future__ import annotations

import pytest

from stemedb.cli.main import main


def test_an_unknown_lens_is_a_usage_error_with_a_did_you_mean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No server runs at this URL: exit 2 proves the lens was refused before any request.
    code = main(["query", "drugs/x", "--lens", "authorty", "--url", "http://127.0.0.1:9"])
    assert code == 2
    err = capsys.readouterr().err
    assert "did you mean 'authority'?" in err
    assert "valid lenses: recency" in err


def test_a_lens_alias_is_accepted_as_a_lens_name() -> None:
    from stemedb.cli.records import _lens_name

    assert _lens_name("Trust_Aware_Authority") == "trust"
