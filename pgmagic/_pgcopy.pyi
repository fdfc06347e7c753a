"""Type stubs for the compiled binary-COPY parser (``_pgcopy.c``)."""

from collections.abc import Callable
from typing import Any

class ProtocolError(ValueError): ...

class Buffer:
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

class Parser:
    nrows: int
    uuid_fast: bool
    decimal_fast: bool
    def __init__(
        self,
        kinds: bytes,
        elem_kinds: bytes,
        elem_oids: tuple[int, ...],
        decimal_type: type,
        uuid_type: type,
        json_loads: Callable[[bytes], Any] | None,
        json_fallback: Callable[[str], Any],
        *,
        layout: int = 0,
        keys: tuple[bytes, ...] | None = None,
        zone: tuple[bytes, bytes, int] | None = None,
    ) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def finish(self) -> Any: ...
    def take_batch(self) -> tuple[int, Any]: ...
    def take_objects(self, index: int, array: Any, /) -> None: ...
