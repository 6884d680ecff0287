"""Shared pieces of the cutover tests: building the service's dependencies on a test world, driving a
cutover step by step (each call with fresh dependencies, as a restarted process would), and a
connector factory that crashes on a chosen remote call (a fault injected through the factory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from tradelane.connectors.base import ConnectorEnv, ConnectorFactory, MarketplaceConnector
from tradelane.persistence.tables import channel_flows, channels, jobs, notifications
from tradelane.services import cutover
from tradelane.services.channels import Channel, get_channel_by_id


class InjectedCrash(Exception):
    """The process "died" here (raised from inside a connector call)."""


class CrashOnCall:
    """Wraps a connector: the ``nth`` call (1-based) to ``method`` raises :class:`InjectedCrash`
    instead of going out (``after=True``: the call goes out, then the crash — the answer is lost)."""

    def __init__(self, inner: MarketplaceConnector, plan: CrashPlan) -> None:
        self._inner = inner
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name != self._plan.method or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._plan.calls += 1
            if self._plan.calls == self._plan.nth and not self._plan.fired:
                self._plan.fired = True
                if self._plan.after:
                    value(*args, **kwargs)
                raise InjectedCrash(f"crash at {name} call {self._plan.nth}")
            return value(*args, **kwargs)

        return call


class CrashPlan:
    def __init__(self, method: str, nth: int = 1, *, after: bool = False) -> None:
        self.method = method
        self.nth = nth
        self.after = after
        self.calls = 0
        self.fired = False

    def factory(self, inner: ConnectorFactory) -> ConnectorFactory:
        def build(env: ConnectorEnv) -> MarketplaceConnector:
            return CrashOnCall(inner(env), self)  # type: ignore[return-value]

        return build


def put_live(world: Any) -> None:
    """Test set-up: the world's channel is Live (a channel is created in Setup, where nothing is sent);
    ``world.channel`` is reloaded."""
    with world.engine.begin() as conn:
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state="live")
        )
        world.channel = get_channel_by_id(conn, world.tenant_id, world.channel.id)


def drain(world: Any, step: float = 20.0, rounds: int = 60) -> None:
    """Run the world's jobs, moving time by ``step``, until none is queued or running — notification
    sends aside (no SMTP server in these tests: they fail on their own schedule), and jobs of paused
    flows (the cutover pauses the channel's flows until it enables them)."""
    for _ in range(rounds):
        world.worker.run(burst=True)
        with world.engine.connect() as conn:
            paused = sa.exists().where(
                channel_flows.c.channel_id == jobs.c.channel_id,
                channel_flows.c.flow == jobs.c.flow,
                channel_flows.c.paused.is_(True),
            )
            pending = conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(
                    jobs.c.state.in_(["queued", "running"]),
                    jobs.c.kind != "notifications.send",
                    ~paused,
                )
            ).scalar_one()
        if not pending:
            return
        world.advance(step)
    with world.engine.connect() as conn:
        left = conn.execute(
            sa.select(jobs.c.kind, jobs.c.state, jobs.c.last_error).where(
                jobs.c.state.in_(["queued", "running"])
            )
        ).all()
    raise AssertionError(f"jobs still pending: {left}")


def deps(world: Any, factory: ConnectorFactory | None = None, actor: str = "cli:tester") -> cutover.Deps:
    """Fresh dependencies (a new "process") on the world's store, clock and keys."""
    return cutover.Deps(
        engine=world.engine,
        clock=world.clock,
        keyring=world.keyring,
        actor=actor,
        factory=factory,
        sleep=world.advance,
    )


def advance_until(
    world: Any,
    channel: Channel,
    done: Callable[[cutover.Cutover], bool],
    *,
    factory: ConnectorFactory | None = None,
    step_seconds: float = 20.0,
    rounds: int = 40,
    between: Callable[[], None] | None = None,
) -> cutover.Cutover:
    """Call ``advance`` (fresh deps each time), run the world's jobs and move time, until ``done``."""
    found: cutover.Cutover | None = None
    for _ in range(rounds):
        found = cutover.advance(deps(world, factory), channel, previous_integrator_disabled=True)
        if done(found):
            return found
        if between is not None:
            between()
        drain(world, step_seconds)
        world.advance(step_seconds)
    raise AssertionError(f"cutover did not get there: {found.as_json() if found else None}")


def revert_until_done(world: Any, channel: Channel, rounds: int = 40) -> cutover.Cutover:
    for _ in range(rounds):
        found = cutover.revert(deps(world), channel, reason="test")
        if found.status == cutover.REVERTED:
            return found
        world.advance(20)
    raise AssertionError("revert did not finish")


def notified(world: Any) -> list[tuple[str, str]]:
    with world.engine.connect() as conn:
        rows = conn.execute(
            sa.select(notifications.c.event, notifications.c.subject).order_by(notifications.c.id)
        ).all()
    return [(r.event, r.subject) for r in rows]
