"""docs/operations.md lists every ``cors_scanner_*`` metric family with its real type, and no other."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from scanner.db.metrics import Buckets, FleetFacts
from scanner.reports.metrics import fleet_families

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ROW = re.compile(r"^\| `(cors_scanner_[a-z0-9_]+)` \| ([a-z]+)")


def test_the_metrics_table_matches_the_exposition() -> None:
    text = DOCS.read_text()
    start = text.index("## Metrics")
    end = text.index("\n## ", start + 1)
    documented = {
        m.group(1): m.group(2) for line in text[start:end].splitlines() if (m := ROW.match(line))
    }
    empty = FleetFacts(
        now=datetime(2026, 1, 1, tzinfo=UTC),
        runs_finished={},
        runs_active={},
        run_durations={},
        last_completed={},
        probes_sent=0,
        probe_errors=0,
        recent_probes={"simple": Buckets.empty((1.0,))},
        findings={},
        regressions={},
        work_items={},
        workers_alive=0,
        deliveries_final={},
        delivery_attempts={},
        deliveries_pending={},
        recent_attempts={},
    )
    served = {}
    for family in fleet_families(empty):
        # The text exposition's names: counters end in _total, info in _info.
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        served[family.name + suffix] = "gauge" if family.type == "info" else family.type
    assert documented == served
