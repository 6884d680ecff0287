"""Reconciler and unique-ID match against the Mirakl sandbox, pre-filled by "another integrator" (OF24
on the shop's own API): offers of ours, one not selected, two unknown to the catalog, one whose variant
group (an offer custom field mapped to ``:parent_sku``) conflicts with ours.

Dry run counts exact and nothing removed; enabling without a (recent, own) dry run refused; with the
flow on, the not-selected offer is removed from the sandbox and the unknown ones kept (and warned
about); ID match categories exact; an operator without OF21 (404) → a clear error, nothing removed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mirakl_world import API_KEY, GENEROUS, SHOP_ID, World, build_world, catalog, ean
from tradelane.cli import build_app
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.domain.channels import Flow
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.tables import channels, jobs, offer_bindings, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import audit, id_match, reconciler
from tradelane.services.channels import set_enabled

GROUP_FIELD = "variant-group"


@pytest.fixture
def world(engine, now) -> Iterator[World]:
    options = {"offer": {"custom_fields": {GROUP_FIELD: ":parent_sku"}}}
    limits = {**GENEROUS, "OF21": [1000, 1]}  # the CLI runs on the wall clock
    yield from build_world(
        engine, now, sandbox_limits={}, channel_limits=limits, options=options, products_count=12
    )


def _prepare(world: World) -> None:
    """Catalog SKU-0..SKU-5 (parent G-<n//2>), selected SKU-0..SKU-3; the shop lists SKU-0, SKU-1 (group
    G-X: conflict), SKU-4 (not selected) and OTHER-1, OTHER-2 (unknown); the reconciler is off."""
    world.state.config.offer_fields = frozenset({GROUP_FIELD})
    world.add_products(catalog(6))
    with world.engine.begin() as conn:
        for i in range(6):
            conn.execute(
                sa.update(products)
                .where(products.c.tenant_id == world.tenant_id, products.c.sku == f"SKU-{i}")
                .values(parent_sku=f"G-{i // 2}")
            )
        unselected = sa.select(products.c.id).where(products.c.sku.in_(["SKU-4", "SKU-5"]))
        conn.execute(sa.delete(offer_bindings).where(offer_bindings.c.product_id.in_(unselected)))
        conn.execute(sa.update(offer_bindings).values(dirty=False))
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state="live")
        )
        set_enabled(conn, world.channel, Flow.RECONCILER, False)

    def offer(sku: str, n: int, group: str | None) -> dict[str, object]:
        body: dict[str, object] = {
            "shop_sku": sku, "product_id": ean(n), "product_id_type": "EAN", "price": "12.50",
            "quantity": 3, "state_code": "11", "update_delete": "update",
        }  # fmt: skip
        if group:
            body["offer_additional_fields"] = [{"code": GROUP_FIELD, "value": group}]
        return body

    other = MiraklClient(world.url, API_KEY, str(SHOP_ID))
    other.update_offers(
        [
            offer("SKU-0", 0, "G-0"),
            offer("SKU-1", 1, "G-X"),
            offer("SKU-4", 4, None),
            offer("OTHER-1", 7, None),
            offer("OTHER-2", 8, "G-9"),
        ]
    )
    other.close()
    world.advance(61)  # the import completes
    assert sorted(world.state.shop_offers(SHOP_ID)) == ["OTHER-1", "OTHER-2", "SKU-0", "SKU-1", "SKU-4"]


def _job_result(world: World, job_id: int) -> tuple[str, dict | None, str | None]:
    with world.engine.connect() as conn:
        row = conn.execute(
            sa.select(jobs.c.state, jobs.c.result, jobs.c.last_error).where(jobs.c.id == job_id)
        ).one()
    return row.state, row.result, row.last_error


def _dry_run(world: World, **kwargs: bool) -> reconciler.Report:
    with world.engine.begin() as conn:
        job_id = reconciler.queue_dry_run(conn, world.channel, actor="cli:test", now=world.clock(), **kwargs)
    world.run(step=61)
    state, result, error = _job_result(world, job_id)
    assert state == "succeeded", error
    assert result is not None
    with world.engine.connect() as conn:
        return reconciler.get_report(conn, world.channel, int(result["report_id"]))


def test_dry_run_then_enable_removes_only_the_not_selected(world: World) -> None:
    _prepare(world)
    report = _dry_run(world)
    assert report.kind == "dry_run" and report.can_delete and report.hint is None
    assert report.counts() == {
        "listed": 5, "selected": 4, "not_listed": 2, "not_selected": 1, "unmanaged": 2, "to_remove": 1,
        "removal_requested": 0, "removal_refused": 0,
    }  # fmt: skip
    assert report.not_listed == ["SKU-2", "SKU-3"]
    assert report.not_selected == ["SKU-4"] and report.to_remove == ["SKU-4"]
    assert report.unmanaged == ["OTHER-1", "OTHER-2"]
    assert report.warning == (
        "2 listings exist that tradelane does not manage: their stock is not kept in sync — "
        "risk of overselling"
    )
    # a dry run removes nothing
    world.advance(120)
    assert len(world.state.shop_offers(SHOP_ID)) == 5
    assert len(world.state.calls("OF24")) == 1  # the other integrator's, none of ours

    now = world.clock()
    with world.engine.begin() as conn:
        with pytest.raises(NotFoundError):
            reconciler.enable_reconciler(
                conn, world.channel, report.id + 99, actor="cli:test", now=now, reason="x"
            )
        with pytest.raises(ValidationError, match="more than 24 h"):
            reconciler.enable_reconciler(
                conn, world.channel, report.id, actor="cli:test", now=now + timedelta(hours=25), reason="go"
            )
    # the flow's own job before any confirmation: skipped, nothing removed
    with world.engine.begin() as conn:
        set_enabled(conn, world.channel, Flow.RECONCILER, True)  # e.g. a flow row enabled by default
    run_id = world.enqueue(reconciler.RUN, flow="reconciler")
    world.run(step=61)
    state, result, _ = _job_result(world, run_id)
    assert state == "succeeded" and result is not None and "no confirmed dry run" in result["skipped"]
    with world.engine.begin() as conn:
        set_enabled(conn, world.channel, Flow.RECONCILER, False)

    with world.engine.begin() as conn:
        enabled = reconciler.enable_reconciler(
            conn, world.channel, report.id, actor="cli:test", now=now, reason="cutover week"
        )
    assert enabled.confirmed_by == "cli:test" and enabled.confirmed_at == now
    with world.engine.connect() as conn:
        events = audit.history(conn, world.channel.id)
    assert [e.action for e in events][-2:] == ["flow.enable", "reconciler.enable"]
    assert events[-1].details["report_id"] == report.id and events[-1].reason == "cutover week"

    run_id = world.enqueue(reconciler.RUN, flow="reconciler")
    world.run(step=61)
    state, result, error = _job_result(world, run_id)
    assert state == "succeeded", error
    assert result is not None and result["removal_requested"] == 1
    world.advance(61)  # OF24 deletion import completes
    assert sorted(world.state.shop_offers(SHOP_ID)) == ["OTHER-1", "OTHER-2", "SKU-0", "SKU-1"]
    with world.engine.connect() as conn:
        run = reconciler.latest_report(conn, world.channel.id, kind="run")
        removal = audit.history(conn, world.channel.id, prefix="reconciler.remove")
    assert run is not None and run.warning is not None and run.unmanaged == ["OTHER-1", "OTHER-2"]
    assert [(r["sku"], r["ok"]) for r in run.removals] == [("SKU-4", True)]
    assert removal[-1].actor == audit.SYSTEM and removal[-1].details["requested"] == ["SKU-4"]


def test_include_unmanaged_removes_the_unknown_too(world: World) -> None:
    _prepare(world)
    report = _dry_run(world, include_unmanaged=True)
    assert report.to_remove == ["OTHER-1", "OTHER-2", "SKU-4"] and report.warning is None
    with world.engine.begin() as conn:
        reconciler.enable_reconciler(
            conn, world.channel, report.id, actor="cli:test", now=world.clock(), reason="r"
        )
    world.enqueue(reconciler.RUN, flow="reconciler")
    world.run(step=61)
    world.advance(61)
    assert sorted(world.state.shop_offers(SHOP_ID)) == ["SKU-0", "SKU-1"]


def test_id_match_categories(world: World) -> None:
    _prepare(world)
    with world.engine.begin() as conn:
        assert id_match.latest_run(conn, world.channel.id) is None
        assert id_match.unresolved_conflicts(conn, world.channel.id) == 0
        job_id = id_match.queue_run(conn, world.channel, actor="cli:test", now=world.clock())
    world.run(step=61)
    state, result, error = _job_result(world, job_id)
    assert state == "succeeded", error
    with world.engine.connect() as conn:
        run = id_match.latest_run(conn, world.channel.id)
        assert run is not None and run.id == result["run_id"]
        rows = id_match.run_rows(conn, run.id)
        assert id_match.unresolved_conflicts(conn, world.channel.id) == 1
    assert run.counts() == {"listed": 5, "matched": 2, "conflict": 1, "only_theirs": 2, "only_ours": 2}
    assert [(r.category, r.sku, r.their_sku, r.our_group, r.their_group) for r in rows] == [
        ("conflict", "SKU-1", "SKU-1", "G-0", "G-X"),
        ("only_theirs", None, "OTHER-1", None, None),
        ("only_theirs", None, "OTHER-2", None, "G-9"),
        ("only_ours", "SKU-2", None, "G-1", None),
        ("only_ours", "SKU-3", None, "G-1", None),
        ("matched", "SKU-0", "SKU-0", "G-0", "G-0"),
        ("matched", "SKU-4", "SKU-4", "G-2", None),
    ]
    csv_text = id_match.to_csv(rows)
    lines = csv_text.splitlines()
    assert lines[0] == "category,sku,their_sku,matched_by,gtin,their_product_id,our_group,their_group"
    assert lines[1] == f"conflict,SKU-1,SKU-1,sku,{ean(1)},{ean(1)},G-0,G-X"
    assert lines[2] == f"only_theirs,,OTHER-1,,,{ean(7)},,"
    assert len(lines) == 8


def test_operator_without_of21_is_a_clear_error_and_removes_nothing(world: World) -> None:
    _prepare(world)
    report = _dry_run(world)
    with world.engine.begin() as conn:
        reconciler.enable_reconciler(
            conn, world.channel, report.id, actor="cli:test", now=world.clock(), reason="r"
        )
    world.state.set_route("OF21", "off")
    with world.engine.begin() as conn:
        dry = reconciler.queue_dry_run(conn, world.channel, actor="cli:test", now=world.clock())
    run = world.enqueue(reconciler.RUN, flow="reconciler")
    world.run(step=61)
    for job_id in (dry, run):
        state, _, error = _job_result(world, job_id)
        assert state == "dead", error
        assert error is not None and "refused to list the shop's offers" in error
        assert "nothing was changed" in error
    world.advance(61)
    assert len(world.state.shop_offers(SHOP_ID)) == 5
    with world.engine.connect() as conn:
        assert reconciler.latest_report(conn, world.channel.id, kind="run") is None


def test_cli_reconcile_enable_and_id_match(world: World, db_url, monkeypatch, tmp_path) -> None:
    _prepare(world)
    key = generate_key()
    with world.engine.begin() as conn:  # the CLI's key
        conn.execute(
            sa.update(channels)
            .where(channels.c.id == world.channel.id)
            .values(credentials=KeyRing([key]).encrypt({"api_key": API_KEY}))
        )
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    cli = build_app()
    name = world.channel.name

    dry = CliRunner().invoke(cli, ["channel", "reconcile", name, "--tenant", "acme"])
    assert dry.exit_code == 0, dry.output
    text = " ".join(dry.output.split())
    assert "2 listings exist that tradelane does not manage" in text
    assert "would remove 1 listing(s)" in text and "SKU-4" in text
    report_id = int(text.split("--enable ")[1].split()[0])

    as_json = CliRunner().invoke(cli, ["channel", "reconcile", name, "--tenant", "acme", "--json"])
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert body["counts"]["unmanaged"] == 2 and body["to_remove"] == ["SKU-4"]
    assert len(world.state.shop_offers(SHOP_ID)) == 5  # dry runs remove nothing

    no_reason = CliRunner().invoke(cli, ["channel", "reconcile", name, "--enable", str(report_id)])
    assert no_reason.exit_code == 1 and "needs a reason" in " ".join(no_reason.output.split())
    enabled = CliRunner().invoke(
        cli, ["channel", "reconcile", name, "--enable", str(report_id), "--reason", "reviewed"]
    )
    assert enabled.exit_code == 0, enabled.output
    assert f"confirming dry run {report_id}" in " ".join(enabled.output.split())
    with world.engine.connect() as conn:
        [event] = audit.history(conn, world.channel.id, prefix="reconciler.")
    assert event.actor.startswith("cli:") and event.details["report_id"] == report_id

    out = tmp_path / "match.csv"
    match = CliRunner().invoke(cli, ["channel", "id-match", name, "--tenant", "acme", "--csv", str(out)])
    assert match.exit_code == 0, match.output
    assert "1 conflict(s)" in " ".join(match.output.split()) and "go-live is blocked" in match.output
    assert out.read_text().splitlines()[1].startswith("conflict,SKU-1,SKU-1,sku,")
    match_json = CliRunner().invoke(cli, ["channel", "id-match", name, "--json"])
    assert json.loads(match_json.stdout)["counts"]["only_theirs"] == 2

    world.state.set_route("OF21", "off")
    broken = CliRunner().invoke(cli, ["channel", "reconcile", name])
    assert broken.exit_code == 2
    assert "refused to list the shop's offers" in " ".join(broken.output.split())


def test_an_offer_being_delisted_is_reported_but_left_to_the_offers_delta(world: World) -> None:
    _prepare(world)
    with world.engine.begin() as conn:  # SKU-1 de-selected with the reconciler on: the delta deletes it
        sku1 = sa.select(products.c.id).where(products.c.sku == "SKU-1").scalar_subquery()
        conn.execute(
            sa.update(offer_bindings)
            .where(offer_bindings.c.product_id == sku1)
            .values(selection_state="delisting")
        )
    report = _dry_run(world)
    assert report.not_selected == ["SKU-1", "SKU-4"] and report.to_remove == ["SKU-4"]
    assert report.not_listed == ["SKU-2", "SKU-3"]


def test_cli_says_why_and_until_when_it_waits(world: World, db_url, monkeypatch, tmp_path) -> None:
    """OF21 allows one call every 7 s (beyond the 5 s a connector waits in-process): the ID match right
    after a dry run waits for the channel's budget, and the CLI says so (it used to sit silent, for a
    minute with Mirakl's published OF21 budget) before printing the match."""
    _prepare(world)
    key = generate_key()
    with world.engine.begin() as conn:
        settings = dict(conn.execute(sa.select(channels.c.settings)).scalar_one())
        settings["rate_limits"] = {**settings["rate_limits"], "OF21": [1, 7]}
        conn.execute(
            sa.update(channels)
            .where(channels.c.id == world.channel.id)
            .values(settings=settings, credentials=KeyRing([key]).encrypt({"api_key": API_KEY}))
        )
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    cli = build_app()
    dry = CliRunner().invoke(cli, ["channel", "reconcile", world.channel.name])
    assert dry.exit_code == 0, dry.output
    assert "waits" not in dry.output
    match = CliRunner().invoke(cli, ["channel", "id-match", world.channel.name, "--json"])
    assert match.exit_code == 0, match.output
    text = " ".join(match.output.split())
    assert "waits (rate limit 1/7s for mirakl:OF21 reached); it runs again at " in text
    assert "stopping now leaves it to a worker" in text
    assert json.loads(match.stdout)["counts"]["only_theirs"] == 2  # --json stays one document on stdout
