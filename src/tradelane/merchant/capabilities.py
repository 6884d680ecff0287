"""Every kind of merchant system tradelane knows, by what it can do: each kind declares its
capabilities (a pure function of the system's settings, next to its adapter), and this module looks
them up; :data:`ADAPTERS` are the order-receiving adapter factories the composition root
(:mod:`tradelane.bootstrap`) hands to the delivery service. Adding a kind touches its package under
:mod:`tradelane.merchant` and these tables.

=========  ==============  =====================  ===========  ==========  ==============
kind       receive_orders  receive_cancellations  send_catalog send_stock  send_shipments
=========  ==============  =====================  ===========  ==========  ==============
http       yes             by settings (default)  no           no          yes (webhook)
shopify    yes             no                     yes          yes         yes
files      no              no                     by settings  by settings no
=========  ==============  =====================  ===========  ==========  ==============

A kind without a declaration declares nothing (no order is ever delivered to it). A ``files`` folder
has no adapter factory: the scan service reads the folder through :mod:`tradelane.merchant.files`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tradelane.merchant import http_oms
from tradelane.merchant.base import (
    AdapterFactory,
    CapabilitiesOf,
    MerchantCapabilities,
    MerchantSystem,
)
from tradelane.merchant.files import capabilities as files
from tradelane.merchant.shopify import adapter as shopify
from tradelane.merchant.shopify.settings import SHOPIFY_KIND

DECLARATIONS: Mapping[str, CapabilitiesOf] = {
    http_oms.HTTP_KIND: http_oms.capabilities,
    SHOPIFY_KIND: shopify.capabilities,
    files.FILES_KIND: files.capabilities,
}

#: Order-receiving adapters by kind (every kind that declares ``receive_orders`` has one).
ADAPTERS: Mapping[str, AdapterFactory] = {
    http_oms.HTTP_KIND: http_oms.http_adapter,
    SHOPIFY_KIND: shopify.shopify_adapter,
}


def capabilities_of(
    system: MerchantSystem, declarations: Mapping[str, CapabilitiesOf] = DECLARATIONS
) -> MerchantCapabilities:
    """What ``system`` declares. Settings that no longer declare validly (edited by hand) declare
    nothing rather than fail: such a system simply takes no part until it is fixed."""
    declare = declarations.get(system.kind)
    if declare is None:
        return MerchantCapabilities()
    try:
        return declare(system.settings)
    except ValueError:
        return MerchantCapabilities()


def describe_capabilities(capabilities: MerchantCapabilities) -> str:
    """``"receive_orders, send_shipments"``, or ``"nothing"``."""
    return ", ".join(capabilities.names()) or "nothing"
