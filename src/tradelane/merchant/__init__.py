"""The merchant side: adapters to the merchant's system of record (an OMS, a commerce platform, a drop
folder), behind the port :mod:`.base`. Each receives orders from tradelane and/or sends catalog, stock
and shipments back — declared per kind (:mod:`.capabilities`). Adapters never write tables.

* :mod:`.base` — the port: adapter protocols, factories, capabilities, the outcome of one delivery;
* :mod:`.capabilities` — every kind tradelane knows: what it declares and its adapter factory;
* :mod:`.schema` — the order document handed to merchant systems (:class:`~.schema.OmsOrder`);
* :mod:`.signing` — the ``X-Tradelane-Signature`` HMAC scheme (both directions);
* :mod:`.http_oms` — the generic HTTP/webhook OMS adapter;
* :mod:`.shopify` — the Shopify adapter; :mod:`.files` — the drop-folder adapter;
* :mod:`.sandbox` — an HTTP OMS sandbox for tests and demos.

The use cases live in :mod:`tradelane.services` (order delivery, merchant webhooks, Shopify webhooks and
catalog, Files scans, adding systems), the repositories in :mod:`tradelane.persistence`
(``merchant_systems``, ``sku_mappings``).
"""
