"""Sizes and durations: what users may write, what they get back, and the error shape."""

from __future__ import annotations

from typing import Any

import pytest

from client.errors import SpecError
from client.units import (
    describe_value,
    format_duration_s,
    format_size_mib,
    parse_duration_s,
    parse_size_mib,
)


@pytest.mark.parametrize(
    ("value", "mib"),
    [
        ("512 MiB", 512),
        ("2 GiB", 2048),
        ("2G", 2048),
        ("2g", 2048),
        ("2GB", 2048),
        ("1.5 GiB", 1536),
        ("0.5Gi", 512),
        ("1 TiB", 1024 * 1024),
        ("1024 KiB", 1),
        ("1 KiB", 1),  # rounds up: YARN would round the request up anyway
        (2048, 2048),
        ("2048", 2048),
        (" 2048 ", 2048),
        ("300M", 300),
        (0, 0),
    ],
)
def test_parse_size_accepts(value: Any, mib: int) -> None:
    assert parse_size_mib(value, "x") == mib


@pytest.mark.parametrize(
    "value", ["lots", "", "-1", -1, "2 PiB", "2 GiB extra", True, None, [2], float("inf")]
)
def test_parse_size_rejects(value: Any) -> None:
    with pytest.raises(SpecError, match=r"^roles\.worker\.resources\.memory: expected a size"):
        parse_size_mib(value, "roles.worker.resources.memory")


def test_parse_size_message_shape() -> None:
    with pytest.raises(SpecError) as info:
        parse_size_mib("lots", "roles.worker.resources.memory")
    assert str(info.value) == (
        "roles.worker.resources.memory: expected a size like '2 GiB', got 'lots'"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1d", 86400),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("2M", 120),
        (30, 30),
        (2.5, 2.5),
        ("30", 30),
        ("0", 0),
        (0, 0),
    ],
)
def test_parse_duration_accepts(value: Any, seconds: float) -> None:
    assert parse_duration_s(value, "x") == seconds


@pytest.mark.parametrize("value", ["soon", "", "5 minutes", "-5s", -1, "h", False, None, {}])
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(SpecError, match=r"^scheduling\.max_runtime: expected a duration"):
        parse_duration_s(value, "scheduling.max_runtime")


def test_parse_duration_message_shape() -> None:
    with pytest.raises(SpecError) as info:
        parse_duration_s("soon", "retry.backoff")
    assert str(info.value) == (
        "retry.backoff: expected a duration like '90s', '5m' or '1h30m', got 'soon'"
    )


@pytest.mark.parametrize(
    ("mib", "text"),
    [
        (2048, "2 GiB"),
        (512, "512 MiB"),
        (1024, "1 GiB"),
        (1536, "1.5 GiB"),
        (1280, "1.25 GiB"),
        (1100, "1100 MiB"),
        (1024 * 1024, "1 TiB"),
        (0, "0 MiB"),
    ],
)
def test_format_size(mib: int, text: str) -> None:
    assert format_size_mib(mib) == text
    assert parse_size_mib(text, "x") == mib


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (90, "1m30s"),
        (300, "5m"),
        (5400, "1h30m"),
        (7200, "2h"),
        (86400 + 60, "1d1m"),
        (1.5, "1.5s"),
        (0.25, "0.25s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration_s(seconds) == text
    assert parse_duration_s(text, "x") == seconds


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(ValueError, match="got -1"):
        format_duration_s(-1)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("lots", "'lots'"),
        (-1, "-1"),
        (None, "null"),
        (True, "true"),
        ([1, 2], "a list [1, 2]"),
        ({"a": 1}, "a mapping {'a': 1}"),
    ],
)
def test_describe_value(value: Any, shown: str) -> None:
    assert describe_value(value) == shown


def test_describe_value_cuts_long_values() -> None:
    shown = describe_value("x" * 500)
    assert len(shown) <= 60
    assert shown.endswith("...")
