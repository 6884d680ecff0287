"""Merchant systems by what they can do: each kind declares its capabilities (a pure function of the
system's settings, next to its adapter), and this module looks them up.

=========  ==============  ===========  ==========  ==============
kind       receive_orders  send_catalog send_stock  send_shipments
=========  ==============  ===========  ==========  ==============
http       yes             no           no          yes (webhook)
shopify    yes             yes          yes         yes
files      no              by settings  by settings no
=========  ==============  ===========  ==========  ==============

A kind without a declaration declares nothing (no order is ever delivered to it).
"""

from __future__ import annotations

from collections.abc import Mapping

from tradelane.merchant import http_oms
from tradelane.merchant.base import CapabilitiesOf, MerchantCapabilities, MerchantSystem
from tradelane.merchant.files import capabilities as files
from tradelane.merchant.shopify import adapter as shopify
from tradelane.merchant.shopify.settings import SHOPIFY_KIND
from tradelane.merchant.systems import HTTP_KIND

DECLARATIONS: Mapping[str, CapabilitiesOf] = {
    HTTP_KIND: http_oms.capabilities,
    SHOPIFY_KIND: shopify.capabilities,
    files.FILES_KIND: files.capabilities,
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
