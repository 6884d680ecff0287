"""What a Files drop folder sends: catalog files, stock files, or both (its ``sends`` setting).

A drop folder never receives orders nor sends shipments. ``settings["sends"]`` is a list of
``"catalog"`` and/or ``"stock"``; absent means both. A folder that sends only one of them rejects files
of the other kind (see :mod:`tradelane.services.files_scan`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tradelane.merchant.base import Capability, MerchantCapabilities

FILES_KIND = "files"
FILE_KINDS = ("catalog", "stock")
_CAPABILITY = {"catalog": Capability.SEND_CATALOG, "stock": Capability.SEND_STOCK}


def parse_sends(value: Iterable[str] | None) -> list[str]:
    """The file kinds a folder sends, normalised (in :data:`FILE_KINDS` order); None means all.

    :class:`ValueError` for an empty list, a non-list or an unknown kind."""
    if value is None:
        return list(FILE_KINDS)
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"sends must be a list of {' and/or '.join(FILE_KINDS)}, got {value!r}")
    kinds = [str(v).strip().lower() for v in value]
    unknown = sorted({k for k in kinds if k not in FILE_KINDS})
    if unknown:
        raise ValueError(f"a drop folder sends {' and/or '.join(FILE_KINDS)}, not {', '.join(unknown)}")
    if not kinds:
        raise ValueError(f"a drop folder must send at least one of {', '.join(FILE_KINDS)}")
    return [k for k in FILE_KINDS if k in kinds]


def capabilities(settings: dict[str, Any]) -> MerchantCapabilities:
    """The :data:`~tradelane.merchant.base.CapabilitiesOf` of ``kind = "files"`` systems."""
    return MerchantCapabilities.of(*(_CAPABILITY[k] for k in parse_sends(settings.get("sends"))))
