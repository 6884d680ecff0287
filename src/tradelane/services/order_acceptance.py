"""Order acceptance for any connector that requires it: the ``orders.accept`` job.

The channel's acceptance policy (setting ``acceptance_policy``) decides each line: ``accept_all``
accepts every line; ``accept_if_known`` refuses a line whose SKU is unknown in the catalog or out of
stock, with the reason recorded on the line. The decisions go to the connector's
:meth:`~tradelane.connectors.base.MarketplaceConnector.accept`.

An acceptance that already took effect (a call that timed out after the marketplace applied it)
completes the job: the connector reports the order's state as the marketplace shows it
(:class:`~tradelane.connectors.base.AcceptanceSettled`) and the order is recorded accepted ("found
already accepted") or not accepted (refused / cancelled); only an order still awaiting acceptance is
retried. The same holds when a poll stored the later state first.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tradelane.connectors.base import AcceptanceSettled, LineDecision
from tradelane.connectors.registry import ConnectorSpec
from tradelane.domain.orders import PAST_ACCEPTANCE_STATES, OrderState, deadline_missed
from tradelane.persistence.tables import products
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.connector_session import ConnectorSession
from tradelane.sync.context import JobContext

#: The channel setting naming its acceptance policy, and the policy refusing unknown / missing SKUs.
POLICY_SETTING = "acceptance_policy"
ACCEPT_IF_KNOWN = "accept_if_known"


def accept_order(ctx: JobContext, channel: Channel, spec: ConnectorSpec) -> dict[str, Any]:
    """Decide and send the acceptance of the job's order (payload ``order_id``); see the module
    docstring. Returns ``accepted`` / ``refused`` line counts, or what was found / skipped."""
    order_id = int(ctx.job.payload["order_id"])
    now = ctx.now()
    with ctx.engine.connect() as conn:
        order = order_service.get_order(conn, channel.tenant_id, order_id)
    if order["accepted_at"] is not None:
        return {"skipped": "already accepted"}
    if order["state"] in PAST_ACCEPTANCE_STATES:
        # A poll saw the order move on before this job recorded its acceptance (e.g. the call timed
        # out after taking effect): the marketplace shows the acceptance done.
        state = OrderState(order["state"])
        return _found_done(ctx, channel, order, state, True, f"a poll saw it {order['state']}", None)
    if order["state"] != OrderState.AWAITING_ACCEPTANCE.value:
        return {"skipped": f"order is {order['state']}"}
    with ConnectorSession(ctx, channel, spec.factory) as session:
        decisions, refusals = _decide(ctx, channel, order)
        try:
            session.connector.accept(
                order["marketplace_order_id"],
                [LineDecision(line_id, ok, refusals.get(line_id)) for line_id, ok in decisions.items()],
            )
        except AcceptanceSettled as settled:
            return _found_done(
                ctx, channel, order, settled.state, settled.accepted, settled.evidence, session
            )
        with ctx.transaction() as conn:
            note = "all lines accepted" if not refusals else f"{len(refusals)} line(s) refused"
            order_service.mark_accepted(conn, channel.tenant_id, order_id, now=now, note=note)
            for line_id, reason in refusals.items():
                order_service.set_line_refusal(conn, order_id, line_id, reason)
            if deadline_missed(order["acceptance_deadline"], False, now):
                order_service.raise_alert(
                    conn,
                    tenant_id=channel.tenant_id,
                    kind="acceptance_late",
                    key=f"acceptance_late:{order_id}",
                    message=f"order {order['marketplace_order_id']} was accepted after its deadline",
                    now=now,
                    channel_id=channel.id,
                    order_id=order_id,
                    severity="warning",
                )
            session.record(conn, f"order:{order_id}", now=now)
            result = {"accepted": sum(decisions.values()), "refused": len(refusals)}
            ctx.complete_in(conn, result)
    return result


def _found_done(
    ctx: JobContext,
    channel: Channel,
    order: dict[str, Any],
    state: OrderState,
    accepted: bool,
    evidence: str,
    session: ConnectorSession | None,
) -> dict[str, Any]:
    """Complete the acceptance job for an order the marketplace no longer awaits a decision on,
    recording what is true: accepted (``state`` past acceptance) or not (refused / cancelled)."""
    order_id = int(order["id"])
    now = ctx.now()
    with ctx.transaction() as conn:
        if accepted:
            note = f"found already accepted on the marketplace ({state.value}; {evidence})"
            order_service.mark_accepted(conn, channel.tenant_id, order_id, now=now, note=note)
            result: dict[str, Any] = {"found_accepted": state.value}
        else:
            note = f"not accepted: the marketplace shows the order {state.value} ({evidence})"
            order_service.add_history(
                conn, channel.tenant_id, order_id, "ACCEPTANCE_NOT_DONE", now=now, note=note
            )
            result = {"found_not_accepted": state.value}
        if session is not None:
            session.record(conn, f"order:{order_id}", now=now)
        ctx.complete_in(conn, result)
    return result


def _decide(
    ctx: JobContext, channel: Channel, order: dict[str, Any]
) -> tuple[dict[str, bool], dict[str, str]]:
    """Line id → accept, and line id → refusal reason, under the channel's acceptance policy."""
    decisions: dict[str, bool] = {}
    refusals: dict[str, str] = {}
    if channel.settings.get(POLICY_SETTING) != ACCEPT_IF_KNOWN:
        return {line["line_id"]: True for line in order["lines"]}, refusals
    skus = [line["sku"] for line in order["lines"]]
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(products.c.sku, products.c.quantity).where(
                products.c.tenant_id == channel.tenant_id, products.c.sku.in_(skus)
            )
        ).all()
    stock: dict[str, int] = {r.sku: r.quantity for r in rows}
    for line in order["lines"]:
        available = stock.get(line["sku"])
        if available is None:
            refusals[line["line_id"]] = f"SKU {line['sku']} is unknown in the catalog"
        elif available < line["quantity"]:
            refusals[line["line_id"]] = f"SKU {line['sku']} out of stock ({available} < {line['quantity']})"
        decisions[line["line_id"]] = line["line_id"] not in refusals
    return decisions, refusals
