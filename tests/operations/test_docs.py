"""docs/operations.md's alert rules and Grafana dashboard name only metrics /metrics exports, and
its metrics table lists every one of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

DOCS = Path(__file__).resolve().parents[2] / "docs"
TOKEN = "metrics-token-for-the-docs-test-0123456789"
METRIC = re.compile(r"\bquorum_[a-z_]+\b")


@pytest.fixture
def exported(client, settings, world, requester, rq_queue) -> set[str]:
    """Every name a scrape of a seeded Quorum exports: the families, and the series names
    Prometheus stores (counters with _total, histograms as _bucket, _sum and _count)."""
    from registry.models import SyncRun
    from tests.factories import make_request

    settings.QUORUM_METRICS_TOKEN = TOKEN
    make_request("fraud", 2, "Production", requester=requester)
    SyncRun.objects.create(kind="full", finished_at=world.model.first_seen_at)
    for name in settings.QUORUM_QUEUES:
        rq_queue(name)
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        # A family is exported even with no series yet (no decided request, say).
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        names.add(family.name)
    return names


def test_every_dashboard_expression_names_exported_metrics(exported):
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(expressions) >= 15
    for expr in expressions:
        named = set(METRIC.findall(expr))
        assert named, expr
        assert named <= exported, (expr, named - exported)


def test_every_alert_rule_names_exported_metrics_and_the_page_shows_the_file(exported):
    text = (DOCS / "quorum-alerts.yml").read_text()
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} >= {
        "QuorumQueueStalled",
        "QuorumSyncFailing",
        "QuorumProofsFailing",
        "QuorumBreakGlassUsed",
        "QuorumRequestsPastReminder",
    }
    for rule in rules:
        named = set(METRIC.findall(rule["expr"]))
        assert named and named <= exported, (rule["alert"], named - exported)
    page = (DOCS / "operations.md").read_text()
    assert text[text.index("groups:") :] in page


def test_the_metrics_table_lists_every_family(exported):
    page = (DOCS / "operations.md").read_text()
    table = set(re.findall(r"^\| `(quorum_[a-z_]+)` \|", page, re.MULTILINE))
    families = {
        name
        for name in exported
        if not name.endswith(("_bucket", "_sum", "_count")) and name + "_total" not in exported
    }
    assert table == families
