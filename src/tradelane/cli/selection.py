"""`tradelane channel select|preview`: which products a channel offers (see services/selection.py).

A product is selected when it carries ANY of the ``--label`` labels and satisfies ALL of the ``--where
attribute=value`` conditions; ``--all`` (or no selection at all) offers every product of the tenant.
"""

from __future__ import annotations

import typer
from rich.table import Table

from tradelane.cli.channels import TenantOpt, channel_app, resolve_channel
from tradelane.cli.common import console, container, fail, print_json
from tradelane.domain.errors import ValidationError
from tradelane.domain.selection import ALL, Selection, selection
from tradelane.services import audit
from tradelane.services import selection as selection_service

_SEMANTICS = (
    "A product is selected when it has ANY of the --label labels and satisfies ALL --where conditions."
)
LabelOpt = typer.Option(
    None, "--label", "-l", help="Select products with this label (repeatable: any of them)."
)
WhereOpt = typer.Option(
    None, "--where", "-w", help="Attribute condition attr=value (repeatable: all must hold)."
)


def _proposed(labels: list[str] | None, where: list[str] | None, every: bool) -> Selection | None:
    """The selection given on the command line; None when none was given."""
    if every and (labels or where):
        fail("--all selects every product: give it without --label / --where")
    if every:
        return ALL
    if not labels and not where:
        return None
    try:
        return selection(labels or (), where or ())
    except ValidationError as exc:
        fail(str(exc))


def _show(channel_name: str, preview: selection_service.SelectionPreview, *, applied: bool) -> None:
    delisted = (
        "deleted from the marketplace (reconciler on)"
        if preview.reconciler
        else "left on the marketplace, no longer updated (reconciler off)"
    )
    if preview.never_sent.count:
        delisted += "; those never sent are only unbound"
    console.print(f"{channel_name}: {preview.selection.describe()}", highlight=False)
    table = Table("", "count", "first SKUs", title="applied" if applied else "preview (nothing sent)")
    rows = [
        ("listed (newly selected)", preview.listed),
        ("updated (still selected)", preview.updated),
        (f"delisted: {delisted}", preview.delisted),
        ("  of which never sent: nothing on the marketplace", preview.never_sent),
        ("not selected — left on the marketplace", preview.left_on_marketplace),
    ]
    for label, group in rows:
        more = " …" if group.count > len(group.sample) else ""
        table.add_row(label, str(group.count), ", ".join(group.sample) + more)
    console.print(table)


@channel_app.command("preview")
def channel_preview(
    name: str,
    tenant: str | None = TenantOpt,
    label: list[str] | None = LabelOpt,
    where: list[str] | None = WhereOpt,
    every: bool = typer.Option(False, "--all", help="Preview offering every product."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What channel NAME's current selection (or the one given) lists, updates and delists — counts and
    first SKUs — before anything is sent. A product is selected when it has ANY of the labels and
    satisfies ALL conditions."""
    with container() as app, app.engine.connect() as conn:
        channel = resolve_channel(conn, name, tenant)
        shown = selection_service.preview(conn, channel, _proposed(label, where, every))
    if as_json:
        print_json(shown.as_json())
        return
    _show(channel.name, shown, applied=False)


@channel_app.command("select")
def channel_select(
    name: str,
    tenant: str | None = TenantOpt,
    label: list[str] | None = LabelOpt,
    where: list[str] | None = WhereOpt,
    every: bool = typer.Option(False, "--all", help="Offer every product again (the default of a channel)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the channel's history)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Choose which products channel NAME offers: --label L (repeatable) and/or --where attr=value
    (repeatable), or --all. A product is selected when it has ANY of the labels and satisfies ALL
    conditions. Shows the preview and asks for confirmation (unless --yes); newly selected products are
    listed by the next offers sync; de-selected ones are deleted from the marketplace when the channel's
    reconciler is on, else left there and no longer updated. The change is recorded in the channel's
    history (selection.set)."""
    proposed = _proposed(label, where, every)
    if proposed is None:
        fail("give --label L and/or --where attr=value, or --all. " + _SEMANTICS)
    with container() as app:
        with app.engine.connect() as conn:
            channel = resolve_channel(conn, name, tenant)
            shown = selection_service.preview(conn, channel, proposed)
        if not yes:
            _show(channel.name, shown, applied=False)
            if not typer.confirm(f"Apply this selection to {channel.name}?", default=False, err=True):
                fail("not confirmed: nothing changed")
        with app.engine.begin() as conn:
            channel = resolve_channel(conn, name, tenant)
            applied = selection_service.set_selection(
                conn, channel, proposed, actor=audit.cli_actor(), now=app.now(), reason=reason
            )
    if as_json:
        print_json(applied.as_json())
        return
    _show(channel.name, applied, applied=True)
