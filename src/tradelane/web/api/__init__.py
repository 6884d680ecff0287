"""The versioned REST API (``/api/v1``): one router module per resource, all tenant-scoped.

Each module's router carries the full ``/api/v1/<resource>`` prefix itself, so a matched route's
``path_format`` is the complete template (the metrics label requests by it).
"""

from __future__ import annotations

from fastapi import FastAPI

from tradelane.web.api import (
    catalog,
    channels,
    jobs,
    lifecycle,
    marketplace,
    order_health,
    orders,
    products,
    reconcile,
    rules,
    selection,
    tenant,
    test_orders,
    webhooks,
)
from tradelane.web.api import cutover as cutover_api
from tradelane.web.api import notifications as notifications_api
from tradelane.web.problems import problem_responses


def include_api(app: FastAPI) -> None:
    """Mount every ``/api/v1`` route; each needs a bearer token and may answer the problems listed here."""
    from tradelane.web.api import shopify_webhooks  # signed by Shopify, no bearer token

    for module in (
        tenant,
        channels,
        marketplace,
        jobs,
        products,
        catalog,
        webhooks,
        notifications_api,
        rules,
        order_health,
        orders,
        test_orders,
        lifecycle,
        selection,
        cutover_api,
        reconcile,
    ):
        app.include_router(module.router, responses=problem_responses(400, 401, 422, 500))
    app.include_router(shopify_webhooks.router, responses=problem_responses(400, 401, 413, 422, 500))
