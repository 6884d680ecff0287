"""All tables (SQLAlchemy Core). Every business row carries ``tenant_id``.

Idempotency is enforced here, by unique indexes, never by check-then-insert:

* ``products (tenant_id, sku)``
* ``jobs (tenant_id, idempotency_key)`` — the same logical work is enqueued once, ever;
* ``jobs (dedupe_key) WHERE state = 'queued'`` — at most one *pending* job per coalescing key;
* ``jobs (exclusive_key) WHERE state IN ('queued', 'running')`` — at most one job *in flight* per key;
* ``inbound_events (tenant_id, source, external_id)`` — the same inbound event is stored once.
"""

from __future__ import annotations

import sqlalchemy as sa

from tradelane.persistence.types import DecimalText, JSONDoc, UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def _tenant() -> sa.Column[int]:
    return sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


tenants = sa.Table(
    "tenants",
    metadata,
    _id(),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _id(),
    _tenant(),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("label", sa.String(100), nullable=False, server_default="default"),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

channels = sa.Table(
    "channels",
    metadata,
    _id(),
    _tenant(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("connector", sa.String(50), nullable=False),
    sa.Column("lifecycle_state", sa.String(30), nullable=False, server_default="setup"),
    sa.Column("settings", JSONDoc, nullable=False),
    # Fernet token of a JSON object; never logged, never returned by the API.
    sa.Column("credentials", sa.LargeBinary(), nullable=True),
    sa.Column("staging_credentials", sa.LargeBinary(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # When the last full offer sync read the catalog; NULL: never (the first delta defers to a full).
    sa.Column("full_synced_at", UTCDateTime(), nullable=True),
    # ``channel remove`` keeps the row (its orders stay for audit) and stamps it here.
    sa.Column("removed_at", UTCDateTime(), nullable=True),
    # 0017 lifecycle: the Testing period (days, start, end), when a blocked automatic promotion is tried
    # again, and when the channel went Live (services/channel_lifecycle.py).
    sa.Column("testing_days", sa.Integer(), nullable=False, server_default="30"),  # 0017
    sa.Column("testing_started_at", UTCDateTime(), nullable=True),  # 0017
    sa.Column("testing_ends_at", UTCDateTime(), nullable=True),  # 0017
    sa.Column("promotion_check_at", UTCDateTime(), nullable=True),  # 0017
    sa.Column("live_at", UTCDateTime(), nullable=True),  # 0017
    sa.UniqueConstraint("tenant_id", "name"),
    sa.Index("ix_channels_testing_ends_at", "lifecycle_state", "testing_ends_at"),  # 0017
)

channel_flows = sa.Table(
    "channel_flows",
    metadata,
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("flow", sa.String(30), primary_key=True),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
    # Why it is paused: NULL (the operator) or "auth" (credentials rejected; `channel update` resumes).
    sa.Column("pause_reason", sa.String(30), nullable=True),
    sa.Column("frequency_seconds", sa.Integer(), nullable=True),
    sa.Column("next_run_at", UTCDateTime(), nullable=True),
    sa.Column("last_run_at", UTCDateTime(), nullable=True),
    sa.Column("last_success_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
)

products = sa.Table(
    "products",
    metadata,
    _id(),
    _tenant(),
    sa.Column("sku", sa.String(200), nullable=False),
    sa.Column("parent_sku", sa.String(200), nullable=True),
    sa.Column("title", sa.Text(), nullable=True),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("brand", sa.String(200), nullable=True),
    sa.Column("gtin", sa.String(20), nullable=True),
    sa.Column("price", DecimalText(), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("quantity", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("labels", JSONDoc, nullable=False),
    sa.Column("attributes", JSONDoc, nullable=False),
    # sha256 of the canonical content; the import diff compares hashes, not columns.
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "sku"),
    sa.Index("ix_products_tenant_parent", "tenant_id", "parent_sku"),
)

# The transactional outbox for listings: one row per (product, channel). A price/stock change bumps
# change_seq and sets dirty in the same transaction; a sync clears dirty only if change_seq is unchanged.
offer_bindings = sa.Table(
    "offer_bindings",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("product_id", BigId, sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("dirty", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("dirty_since", UTCDateTime(), nullable=True),
    sa.Column("change_seq", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("synced_seq", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("status", sa.String(30), nullable=False, server_default="pending"),
    sa.Column("marketplace_status", sa.String(60), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("last_request", sa.Text(), nullable=True),
    sa.Column("last_response", sa.Text(), nullable=True),
    sa.Column("last_synced_at", UTCDateTime(), nullable=True),
    # The marketplace import (e.g. Mirakl OF01/OF24 import id) that last carried this offer.
    sa.Column("import_ref", sa.String(100), nullable=True),
    # 0016 — the product's place in the channel's selection (services.selection): "selected"; "delisting"
    # (no longer selected, its deletion goes with the next delta; the binding is removed once the
    # marketplace accepted it); "left" (no longer selected, reconciler off: left on the marketplace as it
    # is and never updated again).
    sa.Column("selection_state", sa.String(12), nullable=False, server_default="selected"),
    sa.UniqueConstraint("product_id", "channel_id"),
    sa.Index("ix_offer_bindings_channel_dirty", "channel_id", "dirty"),
    sa.Index("ix_offer_bindings_channel_import", "channel_id", "import_ref"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=True),
    sa.Column("flow", sa.String(30), nullable=True),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("payload", JSONDoc, nullable=False),
    sa.Column("idempotency_key", sa.String(300), nullable=True),
    sa.Column("dedupe_key", sa.String(300), nullable=True),
    # At most one queued-or-running job per key (e.g. one delivery of an order in flight).
    sa.Column("exclusive_key", sa.String(300), nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=False, server_default="100"),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer(), nullable=False),
    # Attempts made before the last replay (which resets ``attempts``): the history keeps numbering on.
    sa.Column("replayed_attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("run_at", UTCDateTime(), nullable=False),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_token", sa.String(36), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("error_kind", sa.String(20), nullable=True),
    sa.Column("result", JSONDoc, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("tenant_id", "idempotency_key"),
    # Every claim and every acknowledgement rewrites the job row into each index whose predicate it
    # matches (revision 0011): these hold only the rows they are for (running leases, dead letters, keyed
    # jobs), so a job without keys is written into 5 indexes when claimed and 2 when acknowledged.
    sa.Index(
        "ix_jobs_lease",
        "lease_expires_at",
        sqlite_where=sa.text("state = 'running'"),
        postgresql_where=sa.text("state = 'running'"),
    ),
    sa.Index(
        "ix_jobs_dead",
        "tenant_id",
        "finished_at",
        sqlite_where=sa.text("state = 'dead'"),
        postgresql_where=sa.text("state = 'dead'"),
    ),
    # A tenant's cancelled jobs (revision 0013): the jobs page lists them without reading its history.
    sa.Index(
        "ix_jobs_cancelled",
        "tenant_id",
        "id",
        sqlite_where=sa.text("state = 'cancelled'"),
        postgresql_where=sa.text("state = 'cancelled'"),
    ),
    sa.Index(
        "uq_jobs_pending_dedupe",
        "dedupe_key",
        unique=True,
        sqlite_where=sa.text("state = 'queued' AND dedupe_key IS NOT NULL"),
        postgresql_where=sa.text("state = 'queued' AND dedupe_key IS NOT NULL"),
    ),
    sa.Index(
        "uq_jobs_in_flight_exclusive",
        "exclusive_key",
        unique=True,
        sqlite_where=sa.text("state IN ('queued', 'running') AND exclusive_key IS NOT NULL"),
        postgresql_where=sa.text("state IN ('queued', 'running') AND exclusive_key IS NOT NULL"),
    ),
    # The claim order without a sort of the backlog; queued or running jobs only. The fair claim's
    # index of each (tenant, channel) group's queue follows the table (an expression index).
    sa.Index(
        "ix_jobs_claim_order",
        "priority",
        "run_at",
        "id",
        sqlite_where=sa.text("state IN ('queued', 'running')"),
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    ),
)

# Each (tenant, channel) group's next ready job by an index probe, queued or running jobs only: the
# fair claim's round-robin across groups (revision 0023; was ``ix_jobs_tenant_ready`` per tenant).
# A job's group is its channel, 0 for a job of no channel (channel ids start at 1); queries must spell
# it exactly ``coalesce(channel_id, 0)``, the 0 a literal, to use the index (``sync.jobs._group``).
# Also serves a tenant's queued or running jobs (its leading column).
sa.Index(
    "ix_jobs_group_ready",
    jobs.c.tenant_id,
    sa.text("coalesce(channel_id, 0)"),
    jobs.c.priority,
    jobs.c.run_at,
    jobs.c.id,
    sqlite_where=sa.text("state IN ('queued', 'running')"),
    postgresql_where=sa.text("state IN ('queued', 'running')"),
)

job_attempts = sa.Table(
    "job_attempts",
    metadata,
    _id(),
    sa.Column("job_id", BigId, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("worker", sa.String(100), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("outcome", sa.String(20), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.UniqueConstraint("job_id", "attempt"),
)

# One row per worker process, upserted by its heartbeat thread (live = seen within 3 heartbeats).
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("heartbeat_seconds", sa.Float(), nullable=False),
    sa.Column("current_job_id", BigId, nullable=True),
    sa.Column("held_jobs", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("stats", JSONDoc, nullable=False),
)

inbound_events = sa.Table(
    "inbound_events",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="SET NULL"), nullable=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("external_id", sa.String(300), nullable=False),
    sa.Column("content_type", sa.String(200), nullable=True),
    sa.Column("headers", JSONDoc, nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="received"),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("processed_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("tenant_id", "source", "external_id"),
)

rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("bucket", sa.String(60), primary_key=True),
    # Token counts are not money: float is fine here.
    sa.Column("tokens", sa.Float(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

catalog_imports = sa.Table(
    "catalog_imports",
    metadata,
    _id(),
    _tenant(),
    sa.Column("filename", sa.Text(), nullable=False),
    sa.Column("format", sa.String(10), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("created", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("rejected", sa.Integer(), nullable=False, server_default="0"),
    # First rejected lines (bounded) so a summary is inspectable later.
    sa.Column("errors", JSONDoc, nullable=False),
)

# --- Orders -------------------------------------------------------------------------------------
# One row per marketplace order, unique on (channel, marketplace order id): re-polls, overlapping
# windows and replays can never create a second order.
orders = sa.Table(
    "orders",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("marketplace_order_id", sa.String(100), nullable=False),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("marketplace_state", sa.String(30), nullable=False),
    sa.Column("merchant_status", sa.String(30), nullable=False, server_default="not_ready"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("acceptance_deadline", UTCDateTime(), nullable=True),
    sa.Column("accepted_at", UTCDateTime(), nullable=True),
    sa.Column("shipping_address", JSONDoc, nullable=True),
    sa.Column("billing_address", JSONDoc, nullable=True),
    sa.Column("customer_message", sa.Text(), nullable=True),
    sa.Column("attributes", JSONDoc, nullable=False),
    sa.Column("third_party_managed", sa.Boolean(), nullable=False, server_default=sa.false()),
    # 0019 test orders: a local order made by `orders create-test`, never sent to the marketplace.
    sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("marketplace_created_at", UTCDateTime(), nullable=False),
    sa.Column("marketplace_updated_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("channel_id", "marketplace_order_id"),
    sa.Index("ix_orders_tenant_state", "tenant_id", "state"),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    _id(),
    _tenant(),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    sa.Column("line_id", sa.String(100), nullable=False),
    sa.Column("sku", sa.String(200), nullable=False),
    sa.Column("offer_sku", sa.String(200), nullable=False),
    sa.Column("title", sa.Text(), nullable=True),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("unit_price", DecimalText(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("refusal_reason", sa.Text(), nullable=True),
    sa.UniqueConstraint("order_id", "line_id"),
)

# Every distinct marketplace payload of an order, raw, so any version can be inspected or replayed.
order_versions = sa.Table(
    "order_versions",
    metadata,
    _id(),
    _tenant(),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    sa.Column("marketplace_state", sa.String(30), nullable=False),
    sa.Column("payload", JSONDoc, nullable=False),
    sa.Column("payload_hash", sa.String(64), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("order_id", "payload_hash"),
)

order_history = sa.Table(
    "order_history",
    metadata,
    _id(),
    _tenant(),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("note", sa.Text(), nullable=True),
)

# Operator-facing alerts (missed acceptance deadline, ...). ``key`` makes raising one idempotent.
alerts = sa.Table(
    "alerts",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=True),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False, server_default="error"),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("tenant_id", "key"),
)

# Named cursors per channel (e.g. the OR11 ``start_update_date`` watermark).
channel_cursors = sa.Table(
    "channel_cursors",
    metadata,
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(60), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Raw request/response of marketplace calls worth keeping (offer errors, order updates), by subject.
exchanges = sa.Table(
    "exchanges",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("operation", sa.String(20), nullable=False),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=True),
    sa.Column("request", sa.Text(), nullable=True),
    sa.Column("response", sa.Text(), nullable=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_exchanges_subject", "channel_id", "subject"),
)

order_messages = sa.Table(
    "order_messages",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="SET NULL"), nullable=True),
    sa.Column("marketplace_order_id", sa.String(100), nullable=True),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("author", sa.String(200), nullable=True),
    sa.Column("subject", sa.Text(), nullable=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("raw", JSONDoc, nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("channel_id", "message_id"),
)

returns = sa.Table(
    "returns",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="SET NULL"), nullable=True),
    sa.Column("marketplace_return_id", sa.String(100), nullable=False),
    sa.Column("marketplace_order_id", sa.String(100), nullable=False),
    sa.Column("state", sa.String(40), nullable=False),
    sa.Column("rma", sa.String(100), nullable=True),
    sa.Column("lines", JSONDoc, nullable=False),
    sa.Column("raw", JSONDoc, nullable=False),
    sa.Column("marketplace_updated_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("channel_id", "marketplace_return_id"),
)

# --- Merchant side (system of record) -----------------------------------------------------------
merchant_systems = sa.Table(
    "merchant_systems",
    metadata,
    _id(),
    _tenant(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),  # http | shopify | files
    sa.Column("settings", JSONDoc, nullable=False),
    sa.Column("credentials", sa.LargeBinary(), nullable=True),  # Fernet, like channel credentials
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "name"),
)

# One hand-over of one order to one merchant system; unique so an order is created there once.
order_deliveries = sa.Table(
    "order_deliveries",
    metadata,
    _id(),
    _tenant(),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "merchant_system_id", BigId, sa.ForeignKey("merchant_systems.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("status", sa.String(20), nullable=False),  # pending | delivered | quarantined | released
    sa.Column("external_ref", sa.String(200), nullable=True),  # the merchant system's id for the order
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_request", sa.Text(), nullable=True),
    sa.Column("last_response", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    # A hand-over in flight: the lease token of the delivery attempt sending the order, and since when
    # (set right before the request, cleared when its answer is recorded; see services.order_delivery).
    sa.Column("sending_token", sa.String(36), nullable=True),
    sa.Column("sending_since", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("order_id", "merchant_system_id"),
)

# Order Health: orders that could not be created on the merchant side, with the precise reason.
order_quarantine = sa.Table(
    "order_quarantine",
    metadata,
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True),
    _tenant(),
    sa.Column("reason_code", sa.String(50), nullable=False),  # unknown_sku | missing_field | oms_rejected...
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("detail", JSONDoc, nullable=False),  # e.g. {"skus": [...]} or the OMS response
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("last_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
    sa.Index("ix_order_quarantine_reason", "tenant_id", "reason_code"),
)

# Marketplace SKU -> merchant SKU, per channel (NULL channel = every channel of the tenant).
sku_mappings = sa.Table(
    "sku_mappings",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=True),
    sa.Column("marketplace_sku", sa.String(200), nullable=False),
    sa.Column("merchant_sku", sa.String(200), nullable=False),
    # True: the operator confirmed that ``merchant_sku`` exists only in the merchant system (not in the
    # catalog). False: ``merchant_sku`` must be a catalog SKU of the tenant.
    sa.Column("merchant_only", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "channel_id", "marketplace_sku"),
    # NULLs are distinct in a unique constraint: tenant-wide mappings need their own index.
    sa.Index(
        "uq_sku_mappings_tenant_wide",
        "tenant_id",
        "marketplace_sku",
        unique=True,
        sqlite_where=sa.text("channel_id IS NULL"),
        postgresql_where=sa.text("channel_id IS NULL"),
    ),
)

# Rules are data: attribute rules per channel, publishing rules per merchant system.
order_rules = sa.Table(
    "order_rules",
    metadata,
    _id(),
    _tenant(),
    sa.Column("kind", sa.String(20), nullable=False),  # attribute | publish
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=True),
    sa.Column(
        "merchant_system_id", BigId, sa.ForeignKey("merchant_systems.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("definition", JSONDoc, nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Updates from the merchant side (shipments, cancellations, refunds, returns), each pushed back to the
# order's origin marketplace by a fulfillments job. ``external_id`` dedupes the OMS's retries.
order_updates = sa.Table(
    "order_updates",
    metadata,
    _id(),
    _tenant(),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # shipment | cancellation | refund | return | label
    sa.Column("external_id", sa.String(200), nullable=False),
    sa.Column("payload", JSONDoc, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # queued | sent | failed | not_supported | skipped
    sa.Column("detail", sa.Text(), nullable=True),
    sa.Column("job_id", BigId, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("order_id", "kind", "external_id"),
)

order_documents = sa.Table(
    "order_documents",
    metadata,
    _id(),
    _tenant(),
    sa.Column("order_id", BigId, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),  # shipping_label | invoice | ...
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("source_format", sa.String(10), nullable=False),  # pdf | html
    sa.Column("content", sa.LargeBinary(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # stored | sent | failed
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("order_id", "sha256"),
)

# --- issue 11: taking a channel live ---------------------------------------------------------------
# Each part below is owned by one migration (0015-0021); keep a part's tables together.

# 0015 — the audit trail of channel actions: who did what, when and why (lifecycle, flows, overrides,
# cutover steps). Append-only: rows are never updated or deleted by the application.
channel_events = sa.Table(
    "channel_events",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    # Who: "cli:<os user>", "api:<token name>", "dashboard:<token name>", "system" (scheduler, worker).
    sa.Column("actor", sa.String(200), nullable=False),
    # What, dotted: lifecycle.activate, lifecycle.promote, flow.enable, idmatch.override, cutover.step...
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("details", JSONDoc, nullable=False),
    sa.Index("ix_channel_events_channel_id", "channel_id", "id"),
)

# 0016 — product selection by label (owner: selection)
# A channel's selection rule (domain.selection: {"labels": [...], "where": [[attribute, value], ...]});
# no row: every product of the tenant. offer_bindings.selection_state (above) follows it.
channel_selections = sa.Table(
    "channel_selections",
    metadata,
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
    _tenant(),
    sa.Column("rule", JSONDoc, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_channel_selections_tenant_id", "tenant_id"),
)

# 0017 — lifecycle: Setup -> Testing -> Live, testing period, flow toggles (owner: lifecycle)

# 0018 — reconciler reports and the unique-ID match (owner: reconciler / ID match)
# A reconciler report: the marketplace's listings against what the hub manages for the channel, stored
# by every dry run and every run (services.reconciler). SKU lists as JSON arrays; a dry run's report is
# what an operator confirms when enabling the reconciler flow (confirmed_at / confirmed_by).
reconciler_reports = sa.Table(
    "reconciler_reports",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    # "dry_run" (nothing removed) or "run" (the reconciler flow's periodic job: removals requested)
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("can_delete", sa.Boolean(), nullable=False),
    sa.Column("include_unmanaged", sa.Boolean(), nullable=False),
    sa.Column("listed_count", sa.Integer(), nullable=False),
    sa.Column("selected_count", sa.Integer(), nullable=False),
    sa.Column("not_listed", JSONDoc, nullable=False),  # selected, not on the marketplace
    sa.Column("not_selected", JSONDoc, nullable=False),  # listed, in the catalog, not selected
    sa.Column("unmanaged", JSONDoc, nullable=False),  # listed, SKU unknown to the catalog
    sa.Column("to_remove", JSONDoc, nullable=False),  # what a run removes (empty when it cannot)
    # a run: [{"sku", "ok", "reference", "errors"}] of the deletions it submitted
    sa.Column("removals", JSONDoc, nullable=False),
    sa.Column("warning", sa.Text(), nullable=True),
    sa.Column("hint", sa.Text(), nullable=True),
    sa.Column("confirmed_at", UTCDateTime(), nullable=True),
    sa.Column("confirmed_by", sa.String(200), nullable=True),
    sa.Index("ix_reconciler_reports_channel_id", "channel_id", "id"),
)

# A unique-ID match run (services.id_match): the marketplace's listings against the catalog on the
# unique ID (SKU, else product id / GTIN) and the grouping key (parent_sku vs the listing's group).
id_match_runs = sa.Table(
    "id_match_runs",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("listed_count", sa.Integer(), nullable=False),
    sa.Column("matched", sa.Integer(), nullable=False),
    sa.Column("only_ours", sa.Integer(), nullable=False),
    sa.Column("only_theirs", sa.Integer(), nullable=False),
    sa.Column("conflicts", sa.Integer(), nullable=False),
    sa.Index("ix_id_match_runs_channel_id", "channel_id", "id"),
)

# One row per compared item of a run: category matched | only_ours | only_theirs | conflict.
id_match_rows = sa.Table(
    "id_match_rows",
    metadata,
    _id(),
    sa.Column("run_id", BigId, sa.ForeignKey("id_match_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("category", sa.String(20), nullable=False),
    sa.Column("sku", sa.String(200), nullable=True),  # ours (catalog)
    sa.Column("their_sku", sa.String(200), nullable=True),
    sa.Column("matched_by", sa.String(20), nullable=True),  # "sku" or "product_id"
    sa.Column("gtin", sa.String(20), nullable=True),
    sa.Column("their_product_id", sa.String(200), nullable=True),
    sa.Column("our_group", sa.String(200), nullable=True),
    sa.Column("their_group", sa.String(200), nullable=True),
    sa.Index("ix_id_match_rows_run_id", "run_id", "category"),
)

# 0019 — test orders (owner: test orders): one column, ``orders.is_test`` (in the orders table above).

# 0020 — cutover of a live account (owner: cutover)
# One row per cutover of a channel (services.cutover): where it stands (status, the step being worked on
# and each step's state), what it decided (the date, the holiday window, the order-import cutoff) and its
# working data (flows before, submitted imports, the sync job). At most one cutover per channel that is
# not reverted. ``orders_cutoff``: orders created on the marketplace before it are never imported
# (services.order_intake), while the cutover is not reverted.
cutovers = sa.Table(
    "cutovers",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    # in_progress | waiting | stopped | done | reverting | reverted
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("step", sa.Integer(), nullable=False),
    # {"1": {"state": "pending|running|waiting|done|failed", "started_at", "finished_at", "message"}, ...}
    sa.Column("steps", JSONDoc, nullable=False),
    sa.Column("data", JSONDoc, nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=False),
    sa.Column("previous_integrator_confirmed_at", UTCDateTime(), nullable=True),
    sa.Column("previous_integrator_confirmed_by", sa.String(200), nullable=True),
    sa.Column("holiday_mode", sa.String(20), nullable=False),
    sa.Column("holiday_from", UTCDateTime(), nullable=True),
    sa.Column("holiday_to", UTCDateTime(), nullable=True),
    sa.Column("snapshot_taken_at", UTCDateTime(), nullable=True),
    sa.Column("orders_cutoff", UTCDateTime(), nullable=True),
    sa.Column("revert_report", JSONDoc, nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("reverted_at", UTCDateTime(), nullable=True),
    sa.Index(
        "ix_cutovers_channel_open",
        "channel_id",
        unique=True,
        sqlite_where=sa.text("status <> 'reverted'"),
        postgresql_where=sa.text("status <> 'reverted'"),
    ),
)

# The marketplace's offers as a cutover found them (step 3), taken once and never overwritten: what
# ``revert`` restores. ``zeroed``: the quantity-0 update of this offer was accepted by the marketplace.
cutover_offers = sa.Table(
    "cutover_offers",
    metadata,
    sa.Column("cutover_id", BigId, sa.ForeignKey("cutovers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("sku", sa.String(200), primary_key=True),
    sa.Column("price", DecimalText(), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("quantity", sa.Integer(), nullable=True),
    sa.Column("product_id", sa.String(100), nullable=True),
    sa.Column("raw", JSONDoc, nullable=False),
    sa.Column("zeroed", sa.Boolean(), nullable=False, server_default=sa.false()),
)

# 0021 — notifications: email and signed webhook outbox (owner: notifications)
# Where a tenant's notifications go: one tenant-wide row (channel_id NULL) and optionally one per channel
# (a channel's notifications go to both). The webhook secret is Fernet-encrypted like channel credentials.
notification_settings = sa.Table(
    "notification_settings",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=True),
    sa.Column("emails", JSONDoc, nullable=False),  # list of addresses
    sa.Column("webhook_url", sa.String(1000), nullable=True),
    sa.Column("webhook_secret", sa.LargeBinary(), nullable=True),  # Fernet of {"secret": ...}
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index(
        "uq_notification_settings_tenant",
        "tenant_id",
        unique=True,
        sqlite_where=sa.text("channel_id IS NULL"),
        postgresql_where=sa.text("channel_id IS NULL"),
    ),
    sa.Index(
        "uq_notification_settings_channel",
        "tenant_id",
        "channel_id",
        unique=True,
        sqlite_where=sa.text("channel_id IS NOT NULL"),
        postgresql_where=sa.text("channel_id IS NOT NULL"),
    ),
)

# The outbox: one row per notification, written in the caller's transaction with its send job.
notifications = sa.Table(
    "notifications",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=True),
    sa.Column("event", sa.String(60), nullable=False),  # dotted: cutover.step, golive.done, notify.test...
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("details", JSONDoc, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # queued | retrying | sent | failed
    sa.Column("job_id", BigId, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_notifications_tenant_id", "tenant_id", "id"),
)

# One destination of one notification (an email address or a webhook URL) and its latest outcome.
notification_deliveries = sa.Table(
    "notification_deliveries",
    metadata,
    _id(),
    _tenant(),
    sa.Column(
        "notification_id", BigId, sa.ForeignKey("notifications.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("kind", sa.String(10), nullable=False),  # email | webhook
    sa.Column("destination", sa.String(1000), nullable=False),
    # The settings row a webhook's secret is read from at send time (NULL: removed since).
    sa.Column(
        "settings_id",
        BigId,
        sa.ForeignKey("notification_settings.id", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("status", sa.String(20), nullable=False),  # pending | retrying | sent | failed
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("notification_id", "kind", "destination"),
)

# 0022 — accepted unique-ID match conflicts (owner: ID match conflicts, services.id_match_conflicts)
# The operator's "accept ours" for one conflict of a channel's SKU: the conflict as accepted (our group
# vs theirs), who, when, why. A conflict of the latest ID match run is resolved while its SKU has an
# acceptance of the same groups; a conflict that changes (other groups) needs a new acceptance.
id_match_acceptances = sa.Table(
    "id_match_acceptances",
    metadata,
    _id(),
    _tenant(),
    sa.Column("channel_id", BigId, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    sa.Column("sku", sa.String(200), nullable=False),
    sa.Column("our_group", sa.String(200), nullable=True),
    sa.Column("their_group", sa.String(200), nullable=True),
    sa.Column("run_id", BigId, nullable=False),  # the ID match run whose conflict was accepted
    sa.Column("accepted_at", UTCDateTime(), nullable=False),
    sa.Column("accepted_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.UniqueConstraint("channel_id", "sku"),
)
