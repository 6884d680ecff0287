"""SP-API and Login-with-Amazon error shapes.

SP-API operations answer ``{"errors": [{"code", "message", "details"}]}`` (the ``ErrorList`` of every
model); the LWA token endpoint answers OAuth 2 errors ``{"error", "error_description"}``.
"""

from __future__ import annotations

from typing import Any


class SpApiError(Exception):
    """An SP-API error answer: HTTP ``status`` and one error of the ``ErrorList``."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"errors": [{"code": self.code, "message": self.message, "details": self.details}]}


def invalid_input(message: str, details: str = "") -> SpApiError:
    return SpApiError(400, "InvalidInput", message, details)


def not_found(message: str, details: str = "") -> SpApiError:
    return SpApiError(404, "NotFound", message, details)


def unauthorized(details: str) -> SpApiError:
    """The 403 SP-API gives for a missing, unknown or expired access token and for a seller or
    marketplace the token does not grant."""
    return SpApiError(403, "Unauthorized", "Access to requested resource is denied.", details)


class LwaError(Exception):
    """An OAuth 2 error of the LWA token endpoint (``invalid_client`` 401, others 400)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
