"""A dict bound as json or jsonb may hold what Python code holds: datetimes, Decimal, numpy."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.shell import fails, run

VALUE = {
    "when": dt.datetime(2024, 1, 2, 3, 4, 5),
    "zoned": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "day": dt.date(2024, 1, 2),
    "stamp": pd.Timestamp("2024-01-02 03:04:05"),
    "amount": Decimal("1.10"),
    "n": np.int64(5),
    "f": np.float32(1.5),
    "arr": np.array([1, 2]),
    "tags": ("a", "b"),
    "big": 2**70,
}
EXPECTED = {
    "when": "2024-01-02T03:04:05",
    "zoned": "2024-01-02T03:04:05+00:00",
    "day": "2024-01-02",
    "stamp": "2024-01-02T03:04:05",
    "amount": Decimal("1.10"),
    "n": 5,
    "f": Decimal("1.5"),
    "arr": [1, 2],
    "tags": ["a", "b"],
    "big": 2**70,
}


@pytest.mark.parametrize("kind", ["json", "jsonb"])
def test_rich_values_bind_as_json(ip: Any, kind: str) -> None:
    ip.user_ns["value"] = VALUE
    text = run(ip, f"%pg --scalar SELECT $value::{kind}::text")
    assert json.loads(text, parse_float=Decimal) == EXPECTED
    # numeric stays exact: 1.10 is not rounded through a float
    assert run(ip, "%pg --scalar SELECT ($value::jsonb->>'amount')") == "1.10"


def test_a_load_writes_the_same_json(ip: Any) -> None:
    ip.user_ns["json_frame"] = pd.DataFrame({"doc": [VALUE, None]})
    run(ip, "%pg load json_frame INTO json_loaded --create -q")
    text = run(ip, "%pg --scalar SELECT doc::text FROM json_loaded WHERE doc IS NOT NULL")
    assert json.loads(text, parse_float=Decimal) == EXPECTED
    run(ip, "%pg -q DROP TABLE json_loaded")


def test_what_json_cannot_hold_is_one_line(ip: Any) -> None:
    ip.user_ns["value"] = {"id": uuid.uuid4(), "obj": object()}
    error, _ = fails(ip, "%pg SELECT $value::jsonb")
    assert "not JSON serializable" in str(error) and "\n" not in str(error)
