"""Order Health forms in the dashboard: a refused form comes back (4xx, no redirect) with every error
next to its field and with what was typed; a SKU mapping must name a catalog SKU unless the
merchant-only box is ticked; "Add product" lists the channels it can publish to and publishes only to
the ticked ones."""

from __future__ import annotations

import html
import re

import sqlalchemy as sa
from webtest_support import csrf_of, login

from tradelane.persistence.tables import channels, offer_bindings, products, sku_mappings


def _post(client, url: str, **data):
    answer = client.post(url, data={"csrf": csrf_of(client), **data}, follow_redirects=True)
    return answer.status_code, html.unescape(answer.text)


def _form(page: str, sku: str, kind: str) -> str:
    """The HTML of the ``kind`` form (mapping / product) in the row of the unknown ``sku``."""
    row = page.split(f'data-unknown-sku="{sku}"', 1)[1].split("</tr>", 1)[0]
    return row.split(f'data-form="{kind}"', 1)[1].split("</form>", 1)[0]


def _error(form: str, kind: str, name: str) -> str | None:
    found = re.search(rf'<span class="field-error" id="err-{kind}-{name}">([^<]*)</span>', form)
    return found.group(1) if found else None


def _value(form: str, name: str) -> str | None:
    found = re.search(rf'<input name="{name}"[^>]*value="([^"]*)"', form)
    return found.group(1) if found else None


def _ticked(form: str, name: str) -> list[str]:
    return re.findall(rf'<input type="checkbox" name="{name}" value="([^"]*)" checked>', form)


def test_a_refused_mapping_shows_every_error_next_to_its_field_and_keeps_the_input(client, shops, container):
    login(client, shops.acme.token)
    status, page = _post(
        client,
        "/dashboard/order-health/sku-mapping",
        marketplace_sku="ACME-LEGACY",
        merchant_sku="NOPE-42",
        channel="shop-xx",
    )
    assert status == 422
    form = _form(page, "ACME-LEGACY", "mapping")
    assert "SKU 'NOPE-42' is not in the catalog of tenant acme" in _error(form, "mapping", "merchant_sku")
    assert _error(form, "mapping", "channel") == "no channel named 'shop-xx'"
    assert _value(form, "merchant_sku") == "NOPE-42"
    assert 'aria-invalid="true"' in form
    assert "The mapping of ACME-LEGACY was not added" in page  # the summary lists them too
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sku_mappings)).scalar() == 0


def test_a_merchant_only_mapping_needs_the_box_ticked_and_is_shown_as_such(client, shops, container):
    login(client, shops.acme.token)
    status, page = _post(
        client,
        "/dashboard/order-health/sku-mapping",
        marketplace_sku="ACME-LEGACY",
        merchant_sku="OMS-77",
        channel="shop-fr",
        merchant_only="yes",
    )
    assert status == 200
    assert "ACME-LEGACY now maps to OMS-77 (known only to the merchant system) on shop-fr" in page
    with container.engine.connect() as conn:
        row = conn.execute(sa.select(sku_mappings.c.merchant_sku, sku_mappings.c.merchant_only)).one()
    assert tuple(row) == ("OMS-77", True)
    listed = page.split('id="sku-mappings"', 1)[1]
    assert 'data-mapping="ACME-LEGACY"' in listed and "merchant-only" in listed


def test_a_mapping_stored_before_the_check_is_shown_as_ignored(client, shops, container, now):
    with container.engine.begin() as conn:
        conn.execute(
            sa.insert(sku_mappings).values(
                tenant_id=shops.acme.tenant_id,
                channel_id=None,
                marketplace_sku="ACME-OLD",
                merchant_sku="GONE-1",
                created_at=now,
            )
        )
    login(client, shops.acme.token)
    page = html.unescape(client.get("/dashboard/order-health").text)
    row = page.split('data-mapping="ACME-OLD"', 1)[1].split("</tr>", 1)[0]
    assert "not in the catalog" in row and "ignored" in row


def test_add_product_lists_the_channels_and_publishes_nowhere_unless_ticked(client, shops, container):
    login(client, shops.acme.token)
    page = html.unescape(client.get("/dashboard/order-health").text)
    form = _form(page, "ACME-LEGACY", "product")
    assert '<input type="checkbox" name="publish" value="shop-fr">' in form  # offered, not ticked
    status, page = _post(
        client,
        "/dashboard/order-health/product",
        sku="ACME-LEGACY",
        title="Legacy",
        price="5.00",
        currency="EUR",
    )
    assert status == 200 and "ACME-LEGACY added to the catalog (not published on any channel)" in page

    def bound(sku: str) -> list[str]:
        with container.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(channels.c.name)
                    .select_from(
                        offer_bindings.join(products, products.c.id == offer_bindings.c.product_id).join(
                            channels, channels.c.id == offer_bindings.c.channel_id
                        )
                    )
                    .where(products.c.sku == sku)
                ).scalars()
            )

    assert bound("ACME-LEGACY") == []


def test_a_refused_product_shows_all_its_errors_and_keeps_the_input(client, shops, container):
    login(client, shops.acme.token)
    status, page = _post(
        client,
        "/dashboard/order-health/product",
        sku="ACME-LEGACY",
        title="Legacy",
        price="12,5",
        currency="EURO",
        quantity="-1",
        gtin="123",
        publish=["shop-fr"],
    )
    assert status == 422
    form = _form(page, "ACME-LEGACY", "product")
    errors = {name: _error(form, "product", name) for name in ("price", "currency", "quantity", "gtin")}
    assert all(errors.values()), errors
    assert "price" in errors["price"] and "EURO" in errors["currency"]
    assert "negative" in errors["quantity"] and "digits" in errors["gtin"]
    assert [_value(form, n) for n in ("title", "price", "currency", "quantity", "gtin")] == [
        "Legacy",
        "12,5",
        "EURO",
        "-1",
        "123",
    ]
    assert _ticked(form, "publish") == ["shop-fr"]
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(products.c.id).where(products.c.sku == "ACME-LEGACY")).first() is None
    # Fixed and sent again with the channel still ticked: published there only.
    status, page = _post(
        client,
        "/dashboard/order-health/product",
        sku="ACME-LEGACY",
        title="Legacy",
        price="12.5",
        currency="EUR",
        quantity="1",
        publish=["shop-fr"],
    )
    assert status == 200 and "ACME-LEGACY added to the catalog (published to shop-fr)" in page
    with container.engine.connect() as conn:
        [channel_id] = (
            conn.execute(
                sa.select(offer_bindings.c.channel_id)
                .join(products, products.c.id == offer_bindings.c.product_id)
                .where(products.c.sku == "ACME-LEGACY")
            )
            .scalars()
            .all()
        )
    assert channel_id == shops.acme.channel_id


def test_a_refused_retry_or_release_re_renders_the_page_with_the_reason(client, shops):
    login(client, shops.acme.token)
    status, page = _post(client, "/dashboard/order-health/retry", mode="selected")
    assert status == 422 and "Select at least one order." in page
    order_id = shops.acme.quarantined_order_id
    status, page = _post(client, f"/dashboard/order-health/{order_id}/release")
    assert status == 200
    # The order is released now: a retry of it is refused, and the page says why.
    status, page = _post(client, f"/dashboard/order-health/{order_id}/retry")
    assert status == 409 and "only quarantined or pending orders retry" in page
