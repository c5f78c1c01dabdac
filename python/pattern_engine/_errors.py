"""The one exception type: the engine's code, its name and its message."""

from __future__ import annotations

from ._pe import ffi, lib


class Error(Exception):
    """A failure reported by the C library.

    ``code`` is the library's negative ``PE_E*`` code, ``name`` its name
    ("EORDER", "EMODEL", ...), and ``str(error)`` the library's message.
    """

    def __init__(self, code: int, message: str):
        self.code = int(code)
        self.name = ffi.string(lib.pe_errname(self.code)).decode()
        self.message = message
        super().__init__(message)

    def __repr__(self) -> str:
        return f"Error({self.name}, {self.message!r})"


def strerror(code: int) -> str:
    return ffi.string(lib.pe_strerror(code)).decode()


def check(code: int, message) -> None:
    """Raises Error when code is not PE_OK; message is text, bytes or a
    cffi char buffer holding the library's detail ("" uses the code's
    short text)."""
    if code == lib.PE_OK:
        return
    raise Error(code, text(message) or strerror(code))


def text(message) -> str:
    if message is None:
        return ""
    if isinstance(message, str):
        return message
    if isinstance(message, bytes):
        return message.decode(errors="replace")
    return ffi.string(message).decode(errors="replace")
