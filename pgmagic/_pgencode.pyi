"""Type stubs for the compiled binary-COPY encoder (``_pgencode.c``)."""

from collections.abc import Callable, Sequence
from typing import Any

HEADER: bytes
TRAILER: bytes

class Unencodable(ValueError): ...

class Encoder:
    def __init__(
        self,
        kinds: bytes,
        elem_kinds: bytes,
        elem_oids: tuple[int, ...],
        missing: tuple[Any, ...],
        uuid_type: type,
        decimal_type: type,
        json_dumps: Callable[[Any], bytes],
        json_one: Callable[[Any], bytes],
    ) -> None: ...
    def encode(self, columns: Sequence[tuple[Any, ...]], nrows: int, /) -> bytes: ...
