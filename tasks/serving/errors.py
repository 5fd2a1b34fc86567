"""A request the server refuses: an HTTP status and one line that says what to send instead."""
from __future__ import annotations

from tasks.common.errors import InputError


class BadRequest(InputError):
    """A request that cannot be answered: `status` is its 4xx HTTP status, the message one line for the caller."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message.splitlines()[0] if message else "bad request")
        self.status = status

    @property
    def message(self) -> str:
        return str(self)


TOO_LARGE = 413
UNSUPPORTED = 415  # a body or file of a kind this endpoint cannot read
UNPROCESSABLE = 422  # well-formed, but an option's value is out of range
