"""A Files drop folder's settings (pure): the folder, the scan interval and what it sends.

Stored in ``merchant_systems.settings`` as ``{"folder": <absolute path>, "every_seconds": N, "sends":
[...]}`` (``sends`` only when the folder sends less than every kind, see
:mod:`~tradelane.merchant.files.capabilities`); no credentials. :meth:`FilesSettings.from_settings` raises
:class:`~tradelane.domain.errors.ValidationError` saying what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradelane.domain.errors import ValidationError
from tradelane.merchant.files.capabilities import FILE_KINDS, parse_sends

DEFAULT_EVERY_SECONDS = 60
MIN_EVERY_SECONDS = 10


@dataclass(frozen=True, slots=True)
class FilesSettings:
    folder: Path
    every_seconds: int
    #: The file kinds the folder sends (``catalog``, ``stock``), in :data:`FILE_KINDS` order.
    sends: tuple[str, ...] = FILE_KINDS

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> FilesSettings:
        folder = settings.get("folder")
        every = settings.get("every_seconds", DEFAULT_EVERY_SECONDS)
        if not isinstance(folder, str) or not folder:
            raise ValidationError("a files merchant system needs a folder")
        if isinstance(every, bool) or not isinstance(every, int) or every < MIN_EVERY_SECONDS:
            raise ValidationError(f"every_seconds must be an integer of at least {MIN_EVERY_SECONDS}")
        try:
            sends = parse_sends(settings.get("sends"))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return cls(Path(folder), every, tuple(sends))

    def as_settings(self) -> dict[str, Any]:
        """The stored settings (``sends`` only when the folder sends less than every kind)."""
        settings: dict[str, Any] = {"folder": str(self.folder), "every_seconds": self.every_seconds}
        if self.sends != FILE_KINDS:
            settings["sends"] = list(self.sends)
        return settings
