"""The cutover's emails as the local SMTP server (aiosmtpd) receives them (issue 11, "the emails are
received by the local SMTP server with the right content"), the cases the complete Mirakl run of
test_cutover_followups leaves out:

* step 1: a channel still in Setup stops the cutover — a problem email naming the channel, the step
  and the way out; waiting for the operator's confirmation that the previous integrator disconnects is
  a wait, not a problem: nothing is mailed for it; the confirmed step is mailed as done;
* step 3: the marketplace refuses the zeroing (every OF24 answered 400) — a problem email at step 3;
* the revert's email: what was restored and what could not be (the offers the sync created, deleted;
  an offer whose restore the marketplace refuses);
* an Amazon cutover: one email per completed step, subjects naming the channel and the step, and the
  revert's email.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from email.message import Message
from typing import Any

import pytest
import sqlalchemy as sa
import test_cutover_followups as followups
from cutover_support import advance_until, deps, revert_until_done
from test_cutover_crash_every_call_amazon import CallLog, _run, _step_of, _world
from test_cutover_followups import _to_step_6

from mirakl_world import SHOP_ID, World
from notifications_support import SmtpServer
from tradelane.persistence.tables import channels, notification_settings
from tradelane.services import cutover
from tradelane.services import notifications as notes
from tradelane.services.channels import get_channel_by_id
from tradelane.services.notification_transport import SmtpConfig
from tradelane.sync.worker import Worker, WorkerConfig

smtp = followups.smtp  # a local SMTP server on a free port
world = followups.world  # a live Mirakl shop (SKU-0 and LEGACY-9 listed), mails to ops@example.com


def _mails(smtp: SmtpServer) -> list[Message]:
    return [m.message for m in smtp.received]


def _subjects(smtp: SmtpServer) -> list[str]:
    return [str(m["Subject"]).replace("\r\n", "").strip() for m in _mails(smtp)]  # unfolded


def _body(mail: Message) -> str:
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode().replace("\r\n", "\n")


def _set_lifecycle(world: World, state: str) -> None:
    with world.engine.begin() as conn:
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state=state)
        )
        world.channel = get_channel_by_id(conn, world.tenant_id, world.channel.id)


def test_step_1_problem_is_mailed_and_a_wait_for_the_confirmation_is_not(
    world: World, smtp: SmtpServer
) -> None:
    name = world.channel.name
    _set_lifecycle(world, "setup")
    stopped = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    assert (stopped.step, stopped.steps["1"]["state"]) == (1, "failed"), stopped.as_json()
    world.run(step=20)
    assert _subjects(smtp) == [f"[{name}] cutover stopped at step 1 (schedule): channel {name} is setup"]
    [problem] = _mails(smtp)
    assert problem["To"] == "ops@example.com"
    body = _body(problem)
    assert f"Cutover {stopped.id} of channel {name} (mirakl): stopped at step 1 of 6" in body
    assert f"`tradelane channel activate {name}` first" in body
    assert f"tradelane cutover run {name}" in body and f"tradelane cutover revert {name}" in body

    _set_lifecycle(world, "live")
    waiting = cutover.advance(deps(world), world.channel)  # no confirmation given
    assert (waiting.status, waiting.step) == ("waiting", 1), waiting.as_json()
    assert "--previous-integrator-disabled" in waiting.message
    world.run(step=20)
    assert len(smtp.received) == 1  # a wait is no problem: nothing more is mailed

    cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    world.run(step=20)
    subjects = _subjects(smtp)
    assert subjects[1] == f"[{name}] cutover step 1 (schedule) done", subjects
    body = _body(_mails(smtp)[1])
    assert "previous integrator's disconnection confirmed by cli:tester" in body
    assert "Next: step 2" in body


def test_a_marketplace_error_while_zeroing_is_mailed_as_a_step_3_problem(
    world: World, smtp: SmtpServer
) -> None:
    name = world.channel.name
    world.state.set_route("OF24", "status", status=400)  # the marketplace refuses every offer import
    stopped = advance_until(world, world.channel, lambda c: c.status == cutover.STOPPED)
    assert stopped.step == 3, stopped.as_json()
    world.run(step=20)
    subjects = _subjects(smtp)
    assert subjects[:2] == [
        f"[{name}] cutover step 1 (schedule) done",
        f"[{name}] cutover step 2 (holiday) done",
    ]
    assert len(subjects) == 3 and subjects[2].startswith(f"[{name}] cutover stopped at step 3 (snapshot): ")
    body = _body(_mails(smtp)[2])
    assert f"of channel {name} (mirakl): stopped at step 3 of 6: " in body
    assert "400" in body  # the marketplace's answer
    assert f"tradelane cutover revert {name}" in body
    # the shop is still closed and the listings untouched: nothing was zeroed
    assert world.state.shop(SHOP_ID).closed_from is not None
    assert all(o.quantity > 0 for o in world.state.shop_offers(SHOP_ID).values())


def test_the_revert_email_says_what_was_restored_and_what_could_not_be(
    world: World, smtp: SmtpServer
) -> None:
    name = world.channel.name
    _to_step_6(world)  # the initial sync created SKU-1..3 next to the snapshot's SKU-0 and LEGACY-9
    reverted = revert_until_done(world, world.channel)
    world.run(step=20)
    subjects = _subjects(smtp)
    assert subjects[-1] == f"[{name}] cutover {reverted.id} reverted", subjects
    body = _body(_mails(smtp)[-1])
    assert body.startswith("reverted: 2 of 2 offers restored; not restored: "), body
    assert (
        "3 offer(s) created by the cutover's sync did not exist before: deleted (SKU-1, SKU-2, SKU-3)" in body
    )
    assert "only prices and quantities are restored" in body


# --- Amazon ----------------------------------------------------------------------------------------


@pytest.fixture
def amazon_mails(engine: Any, now: datetime, smtp: SmtpServer) -> Iterator[Any]:
    with _world(engine, now, "acme") as w:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(notification_settings).values(
                    tenant_id=w.tenant_id, emails=["ops@example.com"], created_at=now, updated_at=now
                )
            )
        transport = notes.Transport(
            SmtpConfig(host="127.0.0.1", port=smtp.port, sender="hub@tradelane.test"), w.keyring
        )
        w.worker = Worker(
            w.engine,
            w.registry,
            w.clock,
            WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
            services={"keyring": w.keyring, notes.TRANSPORT: transport},
            name="cutover-worker",
            sleep=w.advance,
        )
        yield w


def test_an_amazon_cutover_mails_every_step_and_the_revert(amazon_mails: Any, smtp: SmtpServer) -> None:
    w = amazon_mails
    name = w.channel.name
    outcome = _run(w, CallLog(_step_of(w)))  # done, then reverted
    for _ in range(10):  # the last notifications.send jobs
        w.worker.run(burst=True)
        w.advance(20)
    subjects = _subjects(smtp)
    assert all(m["To"] == "ops@example.com" for m in _mails(smtp))
    done = [f"[{name}] cutover step {n} ({s}) done" for n, s in enumerate(cutover.STEPS.values(), start=1)]
    assert [s for s in subjects if s.endswith(" done")] == done, subjects
    assert subjects[-1].startswith(f"[{name}] cutover ") and subjects[-1].endswith(" reverted"), subjects
    bodies = [_body(m) for m in _mails(smtp)]
    for body in bodies[:-1]:
        assert f"of channel {name} (amazon)" in body
    holiday = next(b for b in bodies if "step 2 of 6 done" in b)
    assert "no holiday mode" in holiday and "zero stock" in holiday
    assert f"test order {outcome['live']} delivered to the merchant system" in bodies[-2]
    assert bodies[-1].startswith("reverted: 4 of 4 offers restored; not restored: "), bodies[-1]
    assert "deleted (SKU-4)" in bodies[-1]


def test_a_restore_the_marketplace_refuses_is_in_the_revert_email(world: World, smtp: SmtpServer) -> None:
    """The operator removed LEGACY-9's product from its catalog after the cutover: Mirakl refuses the
    restore of that offer (OF24 line error); the revert restores the rest and its email names it."""
    name = world.channel.name
    _to_step_6(world)
    state = world.state
    with state.lock:  # the operator's catalog drops the product (no seller API does this)
        product = state.shop_offers(SHOP_ID)["LEGACY-9"].product
        state.catalog.pop(product.sku)
        for key in [k for k, p in state._by_reference.items() if p is product]:
            del state._by_reference[key]
    reverted = revert_until_done(world, world.channel)
    world.run(step=20)
    report = reverted.revert_report or {}
    assert report["restored"] == 1 and sorted(report["errors"]) == ["LEGACY-9"], report
    assert _subjects(smtp)[-1] == f"[{name}] cutover {reverted.id} reverted"
    body = _body(_mails(smtp)[-1])
    assert body.startswith(
        "reverted: 1 of 2 offers restored; not restored: LEGACY-9: the marketplace refused the restore ("
    )
    assert "does not exist in the catalog" in body
    restored = state.shop_offers(SHOP_ID)["SKU-0"]
    assert (restored.price, restored.quantity) == (Decimal("31.50"), 5)  # the other one: as found
