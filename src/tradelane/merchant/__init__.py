"""The merchant side: the merchant's system of record (an OMS or commerce platform) receives orders
from tradelane and sends shipments, cancellations and returns back.

* :mod:`.schema` — the order document handed to merchant systems (:class:`~.schema.OmsOrder`);
* :mod:`.signing` — the ``X-Tradelane-Signature`` HMAC scheme (both directions);
* :mod:`.base` — the adapter protocol and the classified outcome of one delivery;
* :mod:`.http_oms` — the generic HTTP/webhook OMS adapter;
* :mod:`.systems` — merchant systems (settings + encrypted credentials) and SKU mappings;
* :mod:`.sandbox` — an HTTP OMS sandbox for tests and demos.
"""
