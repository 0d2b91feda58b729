"""A minimal binding of libnftables (``libnftables.so.1``, from the nftables package).

The ``nft`` command is a thin front end to this library; calling the library through
ctypes instead runs the same parser and netlink code in our own process, so the daemon
never forks to change its rules. Commands go in as nft's text syntax or as JSON; with
``json=True`` the output (of ``list ...``) comes back as nft's JSON schema.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

from pycontain.errors import PycontainError

__all__ = ["Nftables"]

_LIBRARY = "libnftables.so.1"
_NFT_CTX_DEFAULT = 0
_NFT_CTX_OUTPUT_HANDLE = 1 << 3
_NFT_CTX_OUTPUT_JSON = 1 << 4

_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(_LIBRARY, use_errno=True)
        except OSError as exc:
            raise PycontainError(f"load {_LIBRARY}: {exc} (install the nftables package)") from exc
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_free.restype = None
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_output_set_flags.restype = None
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_int
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        _lib = lib
    return _lib


class Nftables:
    """One libnftables context with its output and errors buffered.

    Raises PycontainError if the library cannot be loaded or the context not created.
    Use as a context manager, or call ``close()``.
    """

    def __init__(self) -> None:
        self._lib = _library()
        ctx = self._lib.nft_ctx_new(_NFT_CTX_DEFAULT)
        if not ctx:
            raise PycontainError("create a libnftables context: out of memory")
        self._ctx: int | None = ctx
        if self._lib.nft_ctx_buffer_output(ctx) or self._lib.nft_ctx_buffer_error(ctx):
            self.close()
            raise PycontainError("create a libnftables context: cannot buffer its output")

    def __enter__(self) -> Nftables:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def run(self, commands: str, what: str) -> str:
        """Run ``commands`` (one transaction: all or nothing) and return nft's output.

        Raises PycontainError naming ``what`` with nft's own error message.
        """
        return self._run(commands, what, _NFT_CTX_OUTPUT_HANDLE)

    def run_json(self, commands: str, what: str) -> list[dict[str, Any]]:
        """Run ``commands`` with JSON output; return the list under ``"nftables"``.

        Raises PycontainError naming ``what`` if nft fails or answers something else.
        """
        output = self._run(commands, what, _NFT_CTX_OUTPUT_JSON | _NFT_CTX_OUTPUT_HANDLE)
        try:
            items = json.loads(output)["nftables"] if output.strip() else []
        except (ValueError, KeyError, TypeError) as exc:
            raise PycontainError(f"{what}: nft answered malformed JSON: {exc}") from exc
        if not isinstance(items, list):
            raise PycontainError(f"{what}: nft answered malformed JSON")
        return [item for item in items if isinstance(item, dict)]

    def _run(self, commands: str, what: str, flags: int) -> str:
        if self._ctx is None:
            raise PycontainError(f"{what}: the libnftables context is closed")
        self._lib.nft_ctx_output_set_flags(self._ctx, flags)
        status = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
        output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode(errors="replace")
        error = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace")
        if status != 0:
            first = " ".join(error.strip().splitlines()[:1]) or f"status {status}"
            raise PycontainError(f"{what}: {first}")
        return output
