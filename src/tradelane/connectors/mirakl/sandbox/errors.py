"""The error the sandbox's operations raise; the app renders it the way Mirakl does."""

from __future__ import annotations


class SandboxApiError(Exception):
    """An API call the real Mirakl would reject.

    Rendered as ``{"status": <status>, "message": <message>}`` (Mirakl's error body); ``code`` is
    added when the spec documents an error code for the operation (OR21's ``ORDER_INVALID_STATE``...).
    """

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def body(self) -> dict[str, object]:
        payload: dict[str, object] = {"status": self.status, "message": self.message}
        if self.code is not None:
            payload["code"] = self.code
        return payload


def bad_request(message: str, *, code: str | None = None) -> SandboxApiError:
    return SandboxApiError(400, message, code=code)


def not_found(message: str, *, code: str | None = None) -> SandboxApiError:
    return SandboxApiError(404, message, code=code)
