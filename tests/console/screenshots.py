"""Regenerate docs/img/console-*.png: `make console-screenshots`
(or `.venv/bin/python -m tests.console.screenshots` from the repository root).

Starts a throwaway server, loads the demo sample, the generated contested dataset and
the triage cases, writes a few live records, and photographs every view.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # the test kits, as pytest would see them

from browserkit import browser, new_tab  # noqa: E402
from consolekit import contested_dataset, load_demo, triage_cases  # noqa: E402
from e2ekit import Agent, Api  # noqa: E402
from serverkit import SERVE_ARGV, ServerProcess, server_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "img"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="stemedb-shots-") as tmp:
        base = Path(tmp)
        proc = ServerProcess(SERVE_ARGV, server_env(base), base, base / "server.log")
        try:
            if not proc.wait_ready("/v1/ready", 60):
                print(proc.output, file=sys.stderr)
                return 1
            shoot(proc.url)
        finally:
            proc.kill()
    return 0


def shoot(url: str) -> None:
    api = Api(url)
    demo = load_demo(api)
    contested = contested_dataset(api)
    triage_cases(api, "cases", int(time.time()) - 86_400)
    judge = Agent()  # outcomes move agent B's trust, so its plot has a line
    for i, accurate in enumerate((True, True, False, True, True)):
        outcome = judge.record(
            "outcome",
            agent_id=demo.agents["B"],
            assertion_hash=demo.ids["B"],
            accurate=accurate,
            timestamp=1_700_000_100 + i * 86_400,
        )
        api.write("/v1/outcome", outcome)
    reader = Agent()  # a client that says who it is, for the audit view
    for lens, as_of in (("votes", None), ("authority", None), ("recency", 1_700_000_001)):
        body = {"subject": "drugs/semaglutide", "predicate": "gastroparesis_risk", "lens": lens}
        if as_of:
            body["as_of"] = as_of
        api.ok("POST", "/v1/query", body, headers={"X-Agent-Id": reader.id})
    OUT.mkdir(parents=True, exist_ok=True)
    views = [
        ("overview", "#/overview", "#feed li"),
        (
            "claim",
            "#/claim?subject=drugs/semaglutide&predicate=gastroparesis_risk",
            "#lens-table tbody tr",
        ),
        (
            "claim-time",
            f"#/claim?subject={contested.subject}&predicate={contested.predicate}"
            f"&as_of={contested.early}",
            "#lens-table tbody tr",
        ),
        ("concepts", "#/concepts?prefix=drugs/semaglutide", "#predicate-list li"),
        ("concepts-search", "#/concepts?q=hepatotox", "#value-hits tbody tr"),
        ("triage", "#/triage", "#triage-table tbody tr"),
        ("record", f"#/record?hash={demo.ids['Q']}", "#signatures tbody tr"),
        ("agents", f"#/agents?id={demo.agents['B']}", "#agents-table tbody tr"),
        ("audit", "#/audit", "#audit-table tbody tr"),
    ]
    with browser() as b:
        tab = new_tab(b, width=1280, height=860)
        for name, route, selector in views:
            tab.go(url, route)
            tab.ready(selector)
            if name == "overview":
                tab.page.wait_for_function(
                    "() => document.querySelector('#feed-status').textContent == 'live'"
                )
                agent = Agent()
                for i, value in enumerate(("rising", "stable", "rising")):
                    api.write(
                        "/v1/assert", agent.assertion("live/demo", "signal", value, 0.6 + i / 10)
                    )
                tab.page.wait_for_function(
                    "() => document.querySelectorAll('#feed li').length >= 18"
                )
                tab.page.wait_for_function(
                    "() => !document.querySelector('#stat-writes')"
                    ".textContent.includes('measuring')"
                )
            path = OUT / f"console-{name}.png"
            tab.page.screenshot(path=str(path), full_page=True)
            print(path.relative_to(ROOT))
        phone = new_tab(b, width=390, height=844)
        phone.go(url, "#/claim?subject=drugs/semaglutide&predicate=gastroparesis_risk")
        phone.ready("#lens-table tbody tr")
        path = OUT / "console-phone.png"
        phone.page.screenshot(path=str(path), full_page=False)
        print(path.relative_to(ROOT))
        assert not tab.errors and not phone.errors, tab.errors + phone.errors


if __name__ == "__main__":
    raise SystemExit(main())
