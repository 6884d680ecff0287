"""Order rules against a real database: storage, tenant isolation, attribute rules on stored orders,
``should_publish``, previews without side effects, and the ``tradelane rules`` commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from helpers import make_channel, make_tenant
from tradelane.cli import build_app
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.domain.orders import Address, MarketplaceOrder, MarketplaceOrderLine, OrderState
from tradelane.domain.rules import DEFAULT_REASON, RuleKind
from tradelane.persistence.tables import merchant_systems, order_rules, orders
from tradelane.security.crypto import generate_key
from tradelane.services import rules
from tradelane.services.orders import get_order, ingest_order


@dataclass
class Shop:
    tenant_id: int
    fr: int  # channel ids
    de: int
    oms: int  # merchant system ids
    erp: int


def _merchant(engine: Engine, tenant_id: int, name: str, now: datetime) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(merchant_systems)
                .values(
                    tenant_id=tenant_id, name=name, kind="http", settings={}, enabled=True, created_at=now
                )
                .returning(merchant_systems.c.id)
            ).scalar_one()
        )


def _shop(engine: Engine, name: str, now: datetime) -> Shop:
    tenant, _ = make_tenant(engine, name, now)
    return Shop(
        tenant.id,
        make_channel(engine, tenant.id, "shop-fr", now).id,
        make_channel(engine, tenant.id, "shop-de", now).id,
        _merchant(engine, tenant.id, "oms", now),
        _merchant(engine, tenant.id, "erp", now),
    )


@pytest.fixture
def acme(engine: Engine, now: datetime) -> Shop:
    return _shop(engine, "acme", now)


@pytest.fixture
def globex(engine: Engine, now: datetime) -> Shop:
    return _shop(engine, "globex", now)


def _ingest(
    engine: Engine,
    tenant_id: int,
    channel_id: int,
    now: datetime,
    order_id: str = "MO-1",
    *,
    country: str | None = "FR",
    attributes: dict[str, str] | None = None,
    third_party_managed: bool = False,
) -> int:
    order = MarketplaceOrder(
        marketplace_order_id=order_id,
        state=OrderState.TO_SHIP,
        raw_state="SHIPPING",
        currency="EUR",
        created_at=now - timedelta(hours=1),
        updated_at=now,
        lines=(MarketplaceOrderLine("L1", "SKU-1", 2, Decimal("19.90"), "EUR", "SHIPPING", title="Mug"),),
        shipping_address=Address(first_name="Ada", city="Lyon", country=country) if country else None,
        customer_message="Ring twice",
        attributes=dict(attributes or {}),
        raw={"order_id": order_id},
    )
    with engine.begin() as conn:
        return ingest_order(
            conn,
            tenant_id=tenant_id,
            channel_id=channel_id,
            order=order,
            now=now,
            third_party_managed=third_party_managed,
        ).order_id


def _add_attr(engine: Engine, shop: Shop, channel_id: int, now: datetime, **kwargs: Any) -> rules.StoredRule:
    with engine.begin() as conn:
        return rules.add_attribute_rule(
            conn, tenant_id=shop.tenant_id, channel_id=channel_id, now=now, **kwargs
        )


def _add_publish(engine: Engine, shop: Shop, now: datetime, **kwargs: Any) -> rules.StoredRule:
    kwargs.setdefault("merchant_system_id", shop.oms)
    with engine.begin() as conn:
        return rules.add_publish_rule(conn, tenant_id=shop.tenant_id, now=now, **kwargs)


def _should(
    engine: Engine, shop: Shop, order_id: int, channel_id: int, merchant: int | None
) -> tuple[bool, str]:
    with engine.connect() as conn:
        order = get_order(conn, shop.tenant_id, order_id)
        return rules.should_publish(
            conn, tenant_id=shop.tenant_id, merchant_system_id=merchant, channel_id=channel_id, order=order
        )


def _attributes(engine: Engine, shop: Shop, order_id: int, channel_id: int) -> dict[str, str]:
    with engine.connect() as conn:
        order = get_order(conn, shop.tenant_id, order_id)
        return rules.apply_attribute_rules(conn, tenant_id=shop.tenant_id, channel_id=channel_id, order=order)


# --- storage ------------------------------------------------------------------------------------


def test_rules_are_stored_normalised_listed_in_order_and_deleted(engine, acme, now):
    tag = _add_attr(engine, acme, acme.fr, now, attribute="tags", value=" shop-fr ")
    country = _add_attr(engine, acme, acme.fr, now, attribute="country", source="shipping_address.country")
    first = _add_attr(engine, acme, acme.de, now, attribute="tags", value="de", position=1)
    publish = _add_publish(engine, acme, now, field="attributes.tags", op="contains_text", value="shop-fr")
    assert (tag.position, country.position, first.position, publish.position) == (10, 20, 1, 10)
    assert tag.definition == {"attribute": "tags", "mode": "append", "value": "shop-fr"}
    assert (tag.channel, tag.merchant_system, publish.merchant_system, publish.channel) == (
        "shop-fr",
        None,
        "oms",
        None,
    )
    assert (
        publish.summary == "if attributes.tags contains_text 'shop-fr' then publish otherwise do not publish"
    )
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(order_rules.c.definition).where(order_rules.c.id == publish.id)
        ).scalar()
        assert stored == {
            "condition": {"field": "attributes.tags", "op": "contains_text", "value": "shop-fr"},
            "then": True,
            "otherwise": False,
        }
        listed = rules.list_rules(conn, acme.tenant_id)
        assert [r.id for r in listed] == [first.id, tag.id, country.id, publish.id]
        assert [r.id for r in rules.list_rules(conn, acme.tenant_id, kind=RuleKind.PUBLISH)] == [publish.id]
        assert [r.id for r in rules.list_rules(conn, acme.tenant_id, channel_id=acme.de)] == [first.id]
    with engine.begin() as conn:
        assert rules.delete_rule(conn, acme.tenant_id, tag.id).id == tag.id
        with pytest.raises(NotFoundError):
            rules.get_rule(conn, acme.tenant_id, tag.id)


INVALID_RULES = [
    (
        {"kind": "attribute", "definition": {"attribute": "tags", "value": "x"}},
        ValidationError,
        "channel",
    ),
    (
        {
            "kind": "attribute",
            "definition": {"attribute": "tags", "value": "x"},
            "channel": True,
            "merchant": True,
        },
        ValidationError,
        "not per merchant system",
    ),
    (
        {
            "kind": "publish",
            "definition": {"condition": {"field": "attributes.tags", "op": "like", "value": "x"}},
        },
        ValidationError,
        "unknown operator 'like'",
    ),
    (
        {"kind": "publish", "definition": {"condition": {"field": "tags", "op": "exists"}}},
        ValidationError,
        "did you mean 'attributes.tags'",
    ),
    (
        {"kind": "publish", "definition": {"condition": {"field": "id", "op": "exists"}}, "position": -1},
        ValidationError,
        "position",
    ),
]


def test_invalid_rules_are_refused_and_nothing_is_stored(engine, acme, now):
    for kwargs, error, message in INVALID_RULES:
        with engine.begin() as conn, pytest.raises(error, match=message):
            rules.add_rule(
                conn,
                tenant_id=acme.tenant_id,
                kind=kwargs["kind"],
                definition=kwargs["definition"],
                channel_id=acme.fr if kwargs.get("channel") else None,
                merchant_system_id=acme.oms if kwargs.get("merchant") else None,
                position=kwargs.get("position"),
                now=now,
            )
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(order_rules)).scalar_one() == 0


# --- tenant isolation ---------------------------------------------------------------------------


def test_rules_never_cross_tenants(engine, acme, globex, now):
    theirs = _add_attr(engine, globex, globex.fr, now, attribute="tags", value="GLOBEX")
    _add_publish(engine, globex, now, merchant_system_id=None, field="id", op="exists", then=False)
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now)
    globex_order_id = _ingest(engine, globex.tenant_id, globex.fr, now, "G-1")
    assert _attributes(engine, acme, order_id, acme.fr) == {}
    assert _should(engine, acme, order_id, acme.fr, None) == (True, DEFAULT_REASON)
    with engine.begin() as conn:
        assert rules.list_rules(conn, acme.tenant_id) == []
        with pytest.raises(NotFoundError):
            rules.get_rule(conn, acme.tenant_id, theirs.id)
        with pytest.raises(NotFoundError):
            rules.delete_rule(conn, acme.tenant_id, theirs.id)
        with pytest.raises(NotFoundError, match="no channel"):
            rules.add_attribute_rule(
                conn, tenant_id=acme.tenant_id, channel_id=globex.fr, attribute="tags", value="x", now=now
            )
        with pytest.raises(NotFoundError, match="no merchant system"):
            rules.add_publish_rule(
                conn,
                tenant_id=acme.tenant_id,
                merchant_system_id=globex.oms,
                field="id",
                op="exists",
                now=now,
            )
        with pytest.raises(NotFoundError):
            rules.merchant_system_id_by_name(conn, acme.tenant_id, "nope")
        # Another tenant's order never passes, even though acme has a channel of the same name.
        globex_order = get_order(conn, globex.tenant_id, globex_order_id)
        assert globex_order["channel"] == "shop-fr"
        assert rules.should_publish(
            conn, tenant_id=acme.tenant_id, merchant_system_id=None, channel_id=acme.fr, order=globex_order
        ) == (False, "channel shop-fr never had this order (its origin channel is unknown)")
    with engine.connect() as conn:
        assert rules.get_rule(conn, globex.tenant_id, theirs.id).id == theirs.id


# --- attribute rules on stored orders -----------------------------------------------------------


def test_attribute_rules_of_the_orders_channel_apply_in_position_order(engine, acme, now):
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now, attributes={"tags": "gift"})
    _add_attr(engine, acme, acme.fr, now, attribute="tags", value="shop-fr")
    _add_attr(engine, acme, acme.fr, now, attribute="country", source="shipping_address.country")
    _add_attr(engine, acme, acme.fr, now, attribute="invoice_country", source="billing_address.country")
    _add_attr(engine, acme, acme.fr, now, attribute="ref", source="marketplace_order_id")
    _add_attr(engine, acme, acme.fr, now, attribute="note", source="customer_message")
    _add_attr(engine, acme, acme.fr, now, attribute="where", value="first", position=1)
    _add_attr(engine, acme, acme.fr, now, attribute="where", value="last", position=99)
    _add_attr(engine, acme, acme.de, now, attribute="tags", value="shop-de")
    with engine.begin() as conn:
        rules.add_rule(
            conn,
            tenant_id=acme.tenant_id,
            kind="attribute",
            definition={"attribute": "disabled", "value": "x"},
            channel_id=acme.fr,
            enabled=False,
            now=now,
        )
    expected = {
        "tags": "gift, shop-fr",
        "country": "FR",
        "ref": "MO-1",
        "note": "Ring twice",
        "where": "last",
    }
    assert _attributes(engine, acme, order_id, acme.fr) == expected
    # Nothing is written: the stored order keeps its marketplace attributes.
    with engine.connect() as conn:
        assert conn.execute(sa.select(orders.c.attributes).where(orders.c.id == order_id)).scalar() == {
            "tags": "gift"
        }


def test_an_order_without_the_mapped_field_skips_the_rule(engine, acme, now):
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now, country=None)
    _add_attr(engine, acme, acme.fr, now, attribute="country", source="shipping_address.country")
    _add_attr(engine, acme, acme.fr, now, attribute="tags", value="shop-fr")
    assert _attributes(engine, acme, order_id, acme.fr) == {"tags": "shop-fr"}


def test_a_stored_definition_that_no_longer_validates_is_ignored(engine, acme, now):
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(order_rules).values(
                tenant_id=acme.tenant_id,
                kind="attribute",
                channel_id=acme.fr,
                position=1,
                definition={"attribute": "tags", "value": "x", "legacy": True},
                created_at=now,
            )
        )
    _add_attr(engine, acme, acme.fr, now, attribute="tags", value="ok")
    assert _attributes(engine, acme, order_id, acme.fr) == {"tags": "ok"}
    with engine.connect() as conn:
        [broken, _] = rules.list_rules(conn, acme.tenant_id)
    assert broken.summary.startswith("invalid definition: unknown key 'legacy'")


# --- publishing ---------------------------------------------------------------------------------


def test_tag_rule_plus_publish_rule_keep_updates_on_the_origin_marketplace(engine, acme, now):
    _add_attr(engine, acme, acme.fr, now, attribute="tags", value="shop-fr")
    rule = _add_publish(engine, acme, now, field="attributes.tags", op="contains_text", value="SHOP-FR")
    fr_order = _ingest(engine, acme.tenant_id, acme.fr, now, "FR-1")
    de_order = _ingest(engine, acme.tenant_id, acme.de, now, "DE-1")

    assert _should(engine, acme, fr_order, acme.fr, acme.oms) == (
        True,
        f"rule #{rule.id} (attributes.tags contains_text 'SHOP-FR') matched: publish",
    )
    assert _should(engine, acme, fr_order, acme.de, acme.oms) == (
        False,
        "channel shop-de never had this order (it came from shop-fr)",
    )
    # The DE order is not tagged shop-fr, so the rule keeps the update away even from its origin.
    assert _should(engine, acme, de_order, acme.de, acme.oms) == (
        False,
        f"rule #{rule.id} (attributes.tags contains_text 'SHOP-FR') did not match: do not publish",
    )
    assert _should(engine, acme, de_order, acme.fr, acme.oms)[0] is False


def test_without_rules_updates_go_to_the_origin_only(engine, acme, now):
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now)
    assert _should(engine, acme, order_id, acme.fr, acme.oms) == (True, DEFAULT_REASON)
    allowed, reason = _should(engine, acme, order_id, acme.de, acme.oms)
    assert not allowed and reason.startswith("channel shop-de never had this order")


def test_third_party_managed_orders_are_never_published(engine, acme, now):
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now, third_party_managed=True)
    allowed, reason = _should(engine, acme, order_id, acme.fr, acme.oms)
    assert not allowed and "third-party managed" in reason


def test_publish_rules_are_scoped_by_merchant_system_and_target_channel(engine, acme, now):
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now)
    erp_rule = _add_publish(
        engine, acme, now, merchant_system_id=acme.erp, field="id", op="exists", then=False
    )
    de_only = _add_publish(engine, acme, now, channel_id=acme.de, field="id", op="exists", then=False)
    # oms: the erp rule does not apply, the shop-de rule does not apply to shop-fr -> default.
    assert _should(engine, acme, order_id, acme.fr, acme.oms) == (True, DEFAULT_REASON)
    allowed, reason = _should(engine, acme, order_id, acme.fr, acme.erp)
    assert not allowed and reason.startswith(f"rule #{erp_rule.id} (id exists) matched")
    # Source not identified: every rule of the tenant counts.
    assert _should(engine, acme, order_id, acme.fr, None)[0] is False
    # A rule for any merchant system applies to all of them, in position order.
    anyone = _add_publish(
        engine,
        acme,
        now,
        merchant_system_id=None,
        field="shipping_address.country",
        op="equals",
        value="fr",
        position=0,
    )
    assert _should(engine, acme, order_id, acme.fr, acme.oms) == (
        True,
        f"rule #{anyone.id} (shipping_address.country equals 'fr') matched: publish",
    )
    assert de_only.channel == "shop-de"


def test_undecided_rules_fall_through_to_the_next(engine, acme, now):
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now, attributes={"tags": "vip"})
    _add_publish(
        engine, acme, now, field="attributes.tags", op="has_item", value="vip", then=None, otherwise=False
    )
    last = _add_publish(engine, acme, now, field="customer_message", op="contains_text", value="ring")
    assert _should(engine, acme, order_id, acme.fr, acme.oms) == (
        True,
        f"rule #{last.id} (customer_message contains_text 'ring') matched: publish",
    )


# --- preview ------------------------------------------------------------------------------------


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (order_rules, orders)
        )


def test_preview_of_a_stored_order_and_of_a_sample_changes_nothing(engine, acme, now):
    _add_attr(engine, acme, acme.fr, now, attribute="tags", value="shop-fr")
    _add_attr(engine, acme, acme.fr, now, attribute="country", source="billing_address.country")
    rule = _add_publish(engine, acme, now, field="attributes.tags", op="has_item", value="shop-fr")
    order_id = _ingest(engine, acme.tenant_id, acme.fr, now)
    before = _counts(engine)
    with engine.connect() as conn:
        stored = rules.preview_order(
            conn, tenant_id=acme.tenant_id, order_id=order_id, merchant_system_id=acme.oms
        )
        sample = rules.preview_sample(
            conn,
            tenant_id=acme.tenant_id,
            order={
                "id": 999,
                "channel": "shop-fr",
                "attributes": {"tags": ["b2b"]},
                "billing_address": {"country": "BE"},
            },
        )
    assert (stored.origin_channel, stored.merchant_system) == ("shop-fr", "oms")
    assert stored.attributes == {"tags": "shop-fr"}
    assert [(s.applied, s.note) for s in stored.steps] == [
        (True, "append 'shop-fr' to tags"),
        (False, "skipped: billing_address.country is missing"),
    ]
    assert [(d.channel, d.publish) for d in stored.decisions] == [("shop-de", False), ("shop-fr", True)]
    assert (
        stored.decisions[1].reason == f"rule #{rule.id} (attributes.tags has_item 'shop-fr') matched: publish"
    )
    assert sample.attributes == {"tags": "b2b, shop-fr", "country": "BE"}
    assert [(d.channel, d.publish) for d in sample.decisions] == [("shop-de", False), ("shop-fr", True)]
    assert _counts(engine) == before


BAD_SAMPLES = [
    ({"attributes": {}}, "needs 'channel'"),
    ({"channel": "shop-it"}, "not one of the tenant's channels"),
    ({"channel": "shop\x00fr"}, "not one of the tenant's channels"),
]


def test_sample_needs_a_known_origin_channel(engine, acme):
    for sample, message in BAD_SAMPLES:
        with engine.connect() as conn, pytest.raises(ValidationError, match=message):
            rules.preview_sample(conn, tenant_id=acme.tenant_id, order=sample)


ODD_REFS = ["²", "99999999999999999999999", "", "abc", "shop-fr:nope"]


def test_odd_order_refs_are_not_found(engine, acme):
    for ref in ODD_REFS:
        with engine.connect() as conn, pytest.raises(NotFoundError):
            rules.resolve_order(conn, acme.tenant_id, ref)


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path) -> Callable[..., Result]:
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return invoke


def test_cli_add_list_preview_delete(cli, engine, acme, now, tmp_path: Path):
    _ingest(engine, acme.tenant_id, acme.fr, now)
    added = cli(
        "rules",
        "add-attribute",
        "-t",
        "acme",
        "--channel",
        "shop-fr",
        "--attribute",
        "tags",
        "--value",
        "shop-fr",
        "--json",
    )
    assert added.exit_code == 0, added.output
    tag_rule = json.loads(added.stdout)
    assert tag_rule["definition"] == {"attribute": "tags", "mode": "append", "value": "shop-fr"}
    mapped = cli(
        "rules",
        "add-attribute",
        "-t",
        "acme",
        "-c",
        "shop-fr",
        "-a",
        "country",
        "--from",
        "shipping_address.country",
    )
    assert mapped.exit_code == 0, mapped.output
    assert (
        mapped.stdout.startswith("rule #")
        and "set country to field shipping_address.country" in mapped.stdout
    )
    publish = cli(
        "rules",
        "add-publish",
        "-t",
        "acme",
        "--merchant",
        "oms",
        "--field",
        "attributes.tags",
        "--contains",
        "shop-fr",
        "--then",
        "true",
        "--otherwise",
        "false",
    )
    assert publish.exit_code == 0, publish.output

    listed = json.loads(cli("rules", "list", "-t", "acme", "--json").stdout)
    assert [(r["kind"], r["channel"], r["merchant_system"]) for r in listed] == [
        ("attribute", "shop-fr", None),
        ("attribute", "shop-fr", None),
        ("publish", None, "oms"),
    ]

    preview = cli("rules", "preview", "-t", "acme", "--order", "shop-fr:MO-1", "--merchant", "oms", "--json")
    assert preview.exit_code == 0, preview.output
    result = json.loads(preview.stdout)
    assert result["attributes"] == {"tags": "shop-fr", "country": "FR"}
    assert {d["channel"]: d["publish"] for d in result["decisions"]} == {"shop-fr": True, "shop-de": False}

    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"channel": "shop-de", "attributes": {"tags": "x"}}), encoding="utf-8")
    human = cli("rules", "preview", "-t", "acme", "--sample", str(sample))
    assert human.exit_code == 0, human.output
    assert (
        "shop-fr: do not publish (channel shop-fr never had this order (it came from shop-de))"
        in human.stdout
    )

    deleted = cli("rules", "delete", str(tag_rule["id"]))
    assert deleted.exit_code == 0 and f"rule #{tag_rule['id']} deleted" in deleted.stdout
    assert len(json.loads(cli("rules", "list", "-t", "acme", "--json").stdout)) == 2


CLI_REFUSALS = [
    (("add-attribute", "-t", "acme", "-c", "shop-fr", "-a", "tags"), "exactly one of --value"),
    (("add-attribute", "-t", "acme", "-c", "shop-it", "-a", "tags", "--value", "x"), "no channel named"),
    (
        ("add-attribute", "-t", "acme", "-c", "shop-fr", "-a", "x", "--from", "shipping.country"),
        "unknown order field",
    ),
    (("add-publish", "-t", "acme", "--field", "attributes.tags"), "exactly one condition"),
    (("add-publish", "-t", "acme", "--field", "tags", "--exists"), "did you mean 'attributes.tags'"),
    (
        ("add-publish", "-t", "acme", "-m", "nope", "--field", "id", "--exists"),
        "no merchant system named",
    ),
    (("add-publish", "-t", "acme", "--field", "id", "--exists", "--then", "maybe"), "--then must be"),
    (("preview", "-t", "acme"), "exactly one of --order"),
    (("preview", "-t", "acme", "--order", "shop-fr:none"), "no order"),
    (("delete", "999"), "no rule 999"),
    (("delete", "999", "-t", "acme"), "no rule 999"),
]


def test_cli_refusals_exit_non_zero_with_the_reason(cli, acme, engine):
    for args, message in CLI_REFUSALS:
        result = cli("rules", *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in " ".join(result.stderr.split()), args
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(order_rules)).scalar_one() == 0


def test_cli_delete_with_the_wrong_tenant_is_refused(cli, engine, acme, globex, now):
    theirs = _add_attr(engine, globex, globex.fr, now, attribute="tags", value="x")
    result = cli("rules", "delete", str(theirs.id), "--tenant", "acme")
    assert result.exit_code == 1 and f"no rule {theirs.id}" in result.stderr
    with engine.connect() as conn:
        assert rules.get_rule(conn, globex.tenant_id, theirs.id).id == theirs.id
