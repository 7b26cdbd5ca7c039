"""Registry pages: the models list, one model's versions, one version, two versions compared.

Views stay thin: what a metric means is `registry.metrics`, the comparison rows are
`registry.compare`, chart data is `registry.charts` and lazily fetched history is
`registry.history`; the review app reuses all four. Every page reads a fixed number of queries
whatever the registry's size, and answers a bad address with a 404 page (`registry.lookups`) or,
for a comparison's malformed query, a 400 page; never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from infra.page_cache import cached_page

from . import charts, evidence, quorum_tags
from .compare import compare_versions, default_baseline
from .content import content_of
from .history import history_keys, version_histories
from .holdings import holder_timeline
from .lookups import model_or_404, model_version_or_404, version_number, version_or_404
from .metrics import direction, ordered_keys
from .models import ModelVersion, RegisteredModel, Stage

MODELS_PER_PAGE = 25
VERSIONS_PER_PAGE = 50
# Metric columns in the versions table and bars in the comparison chart: room for the main ones.
METRIC_COLUMNS = 6


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "400.html", {"message": message}, status=400)


def _version_choices(model: RegisteredModel) -> list[ModelVersion]:
    """The model's live versions, newest first, with just what a version picker shows."""
    return list(
        model.versions.live()
        .only("id", "model_id", "version", "stage", "aliases", "deleted")
        .order_by("-version")
    )


@dataclass
class ModelRow:
    model: RegisteredModel
    production: list[int] = field(default_factory=list)
    staging: list[int] = field(default_factory=list)

    @property
    def aliases(self) -> list[tuple[str, int]]:
        return sorted((self.model.aliases or {}).items())


@require_GET
@login_required
@cached_page
def model_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    show_deleted = request.GET.get("deleted") == "1"
    models = RegisteredModel.objects.all() if show_deleted else RegisteredModel.objects.live()
    if query:
        models = models.filter(name__icontains=query)
    live = Q(versions__deleted=False)
    models = models.annotate(
        version_count=Count("versions", filter=live),
        latest_version=Max("versions__version", filter=live),
    ).order_by("name")
    page = Paginator(models, MODELS_PER_PAGE).get_page(request.GET.get("page"))

    rows = {model.pk: ModelRow(model) for model in page}
    holders = (
        ModelVersion.objects.live()
        .filter(model_id__in=rows, stage__in=[Stage.PRODUCTION, Stage.STAGING])
        .order_by("-version")
        .values_list("model_id", "stage", "version")
    )
    for model_id, stage, number in holders:
        row = rows[model_id]
        (row.production if stage == Stage.PRODUCTION else row.staging).append(number)
    return render(
        request,
        "registry/model_list.html",
        {"page": page, "rows": list(rows.values()), "query": query, "show_deleted": show_deleted},
    )


@require_GET
@login_required
@cached_page
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = model_or_404(name)
    show_deleted = request.GET.get("deleted") == "1"
    versions = list(model.versions.order_by("-version"))
    for version in versions:
        version.model = model
    live = [v for v in versions if not v.deleted]
    shown = versions if show_deleted else live
    keys = ordered_keys({key for v in live for key in (v.metrics or {})}, limit=METRIC_COLUMNS)
    page = Paginator(shown, VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(v, [(v.metrics or {}).get(key) for key in keys]) for v in page]
    chart_list = [charts.metrics_across_versions(live, keys)] if keys and live else []
    timeline = holder_timeline(model)
    holders_chart = charts.holders_over_time(
        timeline, {v.version: v.metrics or {} for v in versions}, until=timezone.now()
    )
    if holders_chart is not None:
        chart_list.append(holders_chart)
    return render(
        request,
        "registry/model_detail.html",
        {
            "model": model,
            "page": page,
            "rows": rows,
            "metric_keys": keys,
            "show_deleted": show_deleted,
            "deleted_count": len(versions) - len(live),
            "live_count": len(live),
            "aliases": sorted((model.aliases or {}).items()),
            "tags": quorum_tags.model_tags(model.tags),
            "chart_data": {"charts": chart_list},
            "holder_timeline": timeline,
            "has_holders_chart": holders_chart is not None,
        },
    )


@require_GET
@login_required
@cached_page
def version_detail(request: HttpRequest, name: str, version: str) -> HttpResponse:
    current = model_version_or_404(name, version)
    model = current.model
    others = _version_choices(model)
    baseline = default_baseline(current, others)

    keys = history_keys(current)
    histories = version_histories([current], keys=keys)
    history_charts = charts.history_charts([current], histories, keys)
    metrics = [
        (key, (current.metrics or {})[key], direction(key))
        for key in ordered_keys(current.metrics or {})
    ]
    return render(
        request,
        "registry/version_detail.html",
        {
            "model": model,
            "version": current,
            "content": content_of(current),
            "metrics": metrics,
            "params": sorted((current.params or {}).items()),
            "tags": quorum_tags.version_tags(
                current.tags, model=model.name, version=current.version
            ),
            "choices": [v for v in others if v.pk != current.pk],
            "baseline": baseline,
            "history_charts": history_charts,
            "history_unavailable": histories.unavailable,
            "chart_data": {"charts": history_charts},
            # Its signature, environment and data against the version it would replace, as
            # the request page shows them: read before anyone asks for a promotion.
            "evidence": evidence.compare(
                evidence.evidence_of(current), evidence.evidence_of(baseline)
            ),
        },
    )


@require_GET
@login_required
@cached_page
def compare(request: HttpRequest, name: str) -> HttpResponse:
    model = model_or_404(name)
    raw_a, raw_b = request.GET.get("a"), request.GET.get("b")
    a, b = version_number(raw_a), version_number(raw_b)
    if a is None or b is None:
        return _bad_request(
            request,
            "Choose two versions to compare: the address needs ?a=<version>&b=<version>, "
            "both whole numbers.",
        )
    candidate = version_or_404(model, a)
    baseline = version_or_404(model, b)
    comparison = compare_versions(candidate, baseline)

    keys = [row.key for row in comparison.metrics][:METRIC_COLUMNS]
    histories = version_histories([candidate, baseline])
    charted = {key for curves in histories.curves.values() for key in curves}
    history_charts = charts.history_charts([candidate, baseline], histories, ordered_keys(charted))
    chart_list = [charts.metric_comparison(candidate, baseline, keys)] if keys else []
    chart_list += charts.change_charts(candidate, baseline, [row.key for row in comparison.metrics])
    choices = _version_choices(model)
    # A deleted version can still be compared; keep it selectable so the pickers show it.
    choices += [v for v in {candidate.pk: candidate, baseline.pk: baseline}.values() if v.deleted]
    return render(
        request,
        "registry/compare.html",
        {
            "model": model,
            "comparison": comparison,
            "candidate": candidate,
            "baseline": baseline,
            "choices": sorted(choices, key=lambda v: -v.version),
            "has_bar_chart": bool(chart_list),
            "has_change_chart": any(chart["kind"] == "change" for chart in chart_list),
            "history_charts": history_charts,
            "history_unavailable": histories.unavailable,
            "chart_data": {"charts": chart_list + history_charts},
            "evidence": evidence.compare(
                evidence.evidence_of(candidate), evidence.evidence_of(baseline)
            ),
        },
    )
