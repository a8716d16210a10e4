"""The Overview: what is live, how that changed, what ran, what could not be checked."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from scanner.dashboard import pages
from scanner.dashboard.charts import trend_chart
from scanner.dashboard.session import requires
from scanner.dashboard.views.context import render, use_cases
from scanner.db.tokens import Scope

TREND_DAYS = (30, 90)


@requires(Scope.READ)
async def overview(request: web.Request) -> web.StreamResponse:
    days = 90 if request.query.get("days") == "90" else 30
    doc = await pages.overview_page(use_cases(request), days=days)
    series = [(date.fromisoformat(p["day"]), p["live"]) for p in doc["trend"]]
    context = {
        **doc,
        "days": days,
        "day_choices": TREND_DAYS,
        "chart": trend_chart(series),
        "nav": "overview",
    }
    return await render("overview.html", request, context)
