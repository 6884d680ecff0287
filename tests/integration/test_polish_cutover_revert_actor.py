"""A cutover revert is one operator's action however many calls it takes: started from the command line
(``cli:<user>``) and finished by the engine's ``cutover.advance`` job (``system``) — or resumed from
the command line without ``--reason`` — its ``finished`` audit event names the operator and the reason
given at the start, and says which process ran the last call (``run_by``). Against the Mirakl sandbox
over HTTP, whose offer imports run asynchronously (so the revert waits on its restore import)."""

from __future__ import annotations

import test_cutover_mirakl as base
from cutover_support import deps

from mirakl_world import World
from tradelane.services import audit, cutover, cutover_jobs

world = base.world  # the fixture: a live Mirakl shop pre-filled with another integrator's offers

OPERATOR = "cli:alice"
REASON = "merchant postponed the switch"


def _to_step_5(world: World) -> None:
    for _ in range(40):
        state = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
        if state.step == 5:
            return
        base.drain(world)
        world.advance(20)
    raise AssertionError("the cutover did not reach step 5")


def _revert_phases(world: World) -> list[tuple[str, str | None, str, str | None]]:
    with world.engine.connect() as conn:
        events = audit.history(conn, world.channel.id, prefix="cutover.revert", limit=None)
    return [(e.actor, e.reason, e.details["phase"], e.details.get("run_by")) for e in events]


def _started_by_the_operator(world: World) -> cutover.Cutover:
    _to_step_5(world)
    started = cutover.revert(deps(world, actor=OPERATOR), world.channel, reason=REASON)
    assert started.status == cutover.REVERTING, started.as_json()  # the restore's import runs
    return started


def test_a_revert_the_engine_finishes_is_still_the_operators(world: World) -> None:
    started = _started_by_the_operator(world)
    with world.engine.begin() as conn:
        assert cutover_jobs.follow(conn, started, now=world.clock()) is not None
    for _ in range(40):
        world.advance(20)
        world.worker.run(burst=True)  # cutover.advance: revert(...) as system, then follows
        with world.engine.connect() as conn:
            found = cutover.current(conn, world.channel.id)
        if found is not None and found.status == cutover.REVERTED:
            break
    else:
        raise AssertionError("the engine did not finish the revert")
    assert _revert_phases(world) == [
        (OPERATOR, REASON, "started", None),
        (OPERATOR, REASON, "finished", audit.SYSTEM),
    ]


def test_a_revert_resumed_from_the_command_line_keeps_its_reason(world: World) -> None:
    _started_by_the_operator(world)
    for _ in range(40):
        world.advance(20)
        found = cutover.revert(deps(world, actor=OPERATOR), world.channel)  # again, no --reason
        if found.status == cutover.REVERTED:
            break
    else:
        raise AssertionError("the revert did not finish")
    assert _revert_phases(world) == [
        (OPERATOR, REASON, "started", None),
        (OPERATOR, REASON, "finished", None),
    ]
