"""Sizes and durations as users write them in a job spec (JOBSPEC.md, "Job spec").

Sizes become whole MiB (YARN's memory unit) and durations become seconds, so the rest of the
code only ever sees ``memory_mib`` and ``*_s`` numbers. Every parse error is a
:class:`~client.errors.SpecError` whose message starts with the field path::

    roles.worker.resources.memory: expected a size like '2 GiB', got 'lots'
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from client.errors import SpecError

__all__ = [
    "describe_value",
    "format_duration_s",
    "format_size_mib",
    "parse_duration_s",
    "parse_size_mib",
]

# MiB per unit. Decimal spellings (MB, G, ...) mean binary units, as they do in YARN and in
# JVM flags (-Xmx2g): nobody sizing a container means 10^9 bytes.
_SIZE_UNITS: dict[str, int | Fraction] = {
    "k": Fraction(1, 1024),
    "kb": Fraction(1, 1024),
    "ki": Fraction(1, 1024),
    "kib": Fraction(1, 1024),
    "": 1,
    "m": 1,
    "mb": 1,
    "mi": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gi": 1024,
    "gib": 1024,
    "t": 1024**2,
    "tb": 1024**2,
    "ti": 1024**2,
    "tib": 1024**2,
}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)

_DURATION_UNITS: dict[str, int | Fraction] = {
    "ms": Fraction(1, 1000),
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART_RE = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)", re.IGNORECASE)
_DURATION_RE = re.compile(rf"\s*(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+", re.IGNORECASE)
_PLAIN_NUMBER_RE = re.compile(rf"\s*{_NUMBER}\s*")

_SIZE_EXPECTED = "expected a size like '2 GiB', got"
_DURATION_EXPECTED = "expected a duration like '90s', '5m' or '1h30m', got"
_MAX_SHOWN = 60


def describe_value(value: Any) -> str:
    """Show a value from a spec the way the user wrote it, for the "got ..." part of a message.

    Strings are quoted, booleans and null use YAML's spelling, containers say what they are
    (``a list [1, 2]``), and anything long is cut short.

    Args:
        value: any value parsed from YAML (or passed by a library caller).

    Returns:
        A short human-readable rendering, e.g. ``'lots'``, ``-1``, ``null``, ``a list ['a']``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        text = "a list " + repr(list(value))
    elif isinstance(value, dict):
        text = "a mapping " + repr(value)
    else:
        text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return text


def _exact_number(value: Any) -> Fraction | None:
    """A finite non-negative int/float as an exact fraction; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    number = Fraction(value)
    return number if number >= 0 else None


def parse_size_mib(value: Any, path: str) -> int:
    """Parse a memory size into whole MiB.

    Accepted: ``512 MiB``, ``2 GiB``, ``2G``, ``1.5 GiB``, ``2048`` (a bare number is MiB, as
    an int or a string). Units are case-insensitive; ``K/M/G/T``, ``KB/MB/...`` and
    ``Ki/Mi/...`` all mean binary units. A fraction of a MiB rounds up, as YARN rounds requests
    up anyway.

    Args:
        value: what the spec holds.
        path: dotted field path for the error message.

    Returns:
        The size in MiB (>= 0; callers decide whether 0 is allowed).

    Raises:
        SpecError: ``<path>: expected a size like '2 GiB', got 'lots'``.
    """
    number = _exact_number(value)
    if number is None and isinstance(value, str):
        match = _SIZE_RE.fullmatch(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            number = Fraction(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if number is None:
        raise SpecError(f"{path}: {_SIZE_EXPECTED} {describe_value(value)}")
    return math.ceil(number)


def parse_duration_s(value: Any, path: str) -> float:
    """Parse a duration into seconds.

    Accepted: ``90s``, ``5m``, ``2h``, ``1d``, ``500ms``, combinations such as ``1h30m``, and
    plain numbers of seconds (``0``, ``30``, ``2.5``, or the same as a string).

    Args:
        value: what the spec holds.
        path: dotted field path for the error message.

    Returns:
        The duration in seconds (>= 0).

    Raises:
        SpecError: ``<path>: expected a duration like '90s', '5m' or '1h30m', got 'soon'``.
    """
    number = _exact_number(value)
    if number is None and isinstance(value, str):
        if _PLAIN_NUMBER_RE.fullmatch(value):
            number = Fraction(value.strip())
        elif _DURATION_RE.fullmatch(value):
            number = sum(
                (
                    Fraction(amount) * _DURATION_UNITS[unit.lower()]
                    for amount, unit in _DURATION_PART_RE.findall(value)
                ),
                start=Fraction(0),
            )
    if number is None:
        raise SpecError(f"{path}: {_DURATION_EXPECTED} {describe_value(value)}")
    return float(number)


def format_size_mib(mib: int) -> str:
    """Render MiB the way a user would write it; the result parses back to the same number.

    Whole (or simply fractional: .25/.5/.75) GiB and TiB use the larger unit, everything else
    stays in MiB.

    Args:
        mib: a size in MiB.

    Returns:
        e.g. ``"2 GiB"``, ``"1.5 GiB"``, ``"512 MiB"``.
    """
    for unit, factor in (("TiB", 1024**2), ("GiB", 1024)):
        if mib >= factor and (mib * 4) % factor == 0:
            return f"{_trim(Fraction(mib, factor))} {unit}"
    return f"{mib} MiB"


def format_duration_s(seconds: float) -> str:
    """Render seconds compactly; the result parses back to the same number (to the ms).

    Args:
        seconds: a duration (>= 0).

    Returns:
        e.g. ``"0s"``, ``"90s"`` → ``"1m30s"``, ``"2h"``, ``"1h30m"``, ``"1.5s"``.

    Raises:
        ValueError: ``seconds`` is negative or not finite.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number >= 0, got {seconds!r}")
    millis = round(seconds * 1000)
    whole, millis = divmod(millis, 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or millis or not parts:
        parts.append(f"{_trim(Fraction(whole * 1000 + millis, 1000))}s")
    return "".join(parts)


def _trim(number: Fraction) -> str:
    """A fraction with a short decimal expansion as ``1.5`` rather than ``1.500``/``3/2``."""
    if number.denominator == 1:
        return str(number.numerator)
    return f"{float(number):.3f}".rstrip("0").rstrip(".")
