"""Tests for memsim.units: exact parsing of quantities with units, error messages, formatting."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.units import (
    format_bandwidth,
    format_bytes,
    format_duration_ps,
    parse_bitrate_bps,
    parse_duration_ps,
    parse_energy_pj,
    parse_frequency_hz,
    parse_power_mw,
    parse_size_bytes,
)


@pytest.mark.parametrize(
    ("text", "ps"),
    [
        ("14ns", 14_000),
        ("0.625ns", 625),  # exact: binary floats would give 624.999...
        ("0.83ns", 830),
        ("3.9us", 3_900_000),
        ("7.8 \u00b5s", 7_800_000),  # MICRO SIGN
        ("7.8 \u03bcs", 7_800_000),  # GREEK SMALL LETTER MU
        ("7.8us", 7_800_000),
        ("1250ps", 1250),
        ("2ms", 2_000_000_000),
        ("1s", 10**12),
        ("1.5e3ns", 1_500_000),
        (" 121.875ns ", 121_875),
        ("0ns", 0),
        ("+5ns", 5000),
        (".5ns", 500),
    ],
)
def test_parse_duration_exact(text: str, ps: int) -> None:
    got = parse_duration_ps(text)
    assert got == ps
    assert type(got) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (14, "expected a duration like '14ns', got 14"),
        (-3, "expected a duration like '14ns', got -3"),
        (14.0, "expected a duration like '14ns', got 14.0"),
        ("14", "expected a duration like '14ns', got '14'"),
        (True, "expected a duration like '14ns', got true"),
        (None, "expected a duration like '14ns', got null"),
        ("-3ns", "expected a non-negative duration like '14ns', got '-3ns'"),
        ("0.1ps", "'0.1ps' is not a whole number of picoseconds"),
        ("14 parsecs", "unknown unit 'parsecs'"),
        ("14NS", "unknown unit 'NS'"),
        ("ns", "expected a duration like '14ns', got 'ns'"),
        ("1e999999999ns", "exponent out of range"),
        ("", "expected a duration like '14ns', got ''"),
    ],
)
def test_parse_duration_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_duration_ps(value)
    assert message in str(err.value)


def test_negative_allowed_by_flag() -> None:
    assert parse_duration_ps("-3ns", allow_negative=True) == -3000
    assert parse_size_bytes("-1KiB", allow_negative=True) == -1024


@pytest.mark.parametrize(
    ("text", "n"),
    [("2KiB", 2048), ("1KB", 1000), ("1kB", 1000), ("64B", 64), ("1.5KiB", 1536), ("1MiB", 1024**2),
     ("8GiB", 8 * 1024**3), ("2GB", 2 * 10**9), ("1TiB", 1024**4)],
)
def test_parse_size(text: str, n: int) -> None:
    assert parse_size_bytes(text) == n


@pytest.mark.parametrize("bad", ["0.5B", "1kb", "1Kib", "64", 64, "1 Gbps"])
def test_parse_size_errors(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size_bytes(bad)


def test_parse_frequency() -> None:
    assert parse_frequency_hz("1.2GHz") == 1_200_000_000
    assert parse_frequency_hz("300MHz") == 300_000_000
    assert parse_frequency_hz("1.6 GHz") == 1_600_000_000
    with pytest.raises(ValueError, match="whole number of hertz"):
        parse_frequency_hz("0.5Hz")
    with pytest.raises(ValueError, match="expected a frequency like '1.2GHz'"):
        parse_frequency_hz(1.2e9)


def test_parse_bitrate() -> None:
    assert parse_bitrate_bps("6.4Gbps") == 6_400_000_000
    assert parse_bitrate_bps("2Gbps") == 2_000_000_000
    assert parse_bitrate_bps("333Mbps") == 333_000_000
    assert parse_bitrate_bps("6400MT/s") == parse_bitrate_bps("6.4Gbps")
    assert parse_bitrate_bps("2Gb/s") == 2 * 10**9
    assert parse_bitrate_bps("2400Mbps") == 2_400_000_000
    with pytest.raises(ValueError, match="unknown unit 'GB/s'"):
        parse_bitrate_bps("1GB/s")  # a per-pin rate is in bits


def test_parse_energy_and_power() -> None:
    assert parse_energy_pj("3.5pJ") == 3.5
    assert parse_energy_pj("1nJ") == 1000.0
    assert parse_energy_pj("1fJ") == pytest.approx(0.001)
    assert parse_energy_pj("901.12pJ") == pytest.approx(901.12)
    assert parse_power_mw("120mW") == 120.0
    assert parse_power_mw("1.2W") == 1200.0
    assert parse_power_mw("5uW") == pytest.approx(0.005)
    with pytest.raises(ValueError, match="expected an energy like '3.5pJ', got 3.5"):
        parse_energy_pj(3.5)
    with pytest.raises(ValueError, match="non-negative"):
        parse_power_mw("-1W")


def test_format() -> None:
    assert format_duration_ps(625) == "625 ps"
    assert format_duration_ps(12_500) == "12.5 ns"
    assert format_duration_ps(3_900_000) == "3.9 us"
    assert format_duration_ps(2 * 10**12) == "2 s"
    assert format_bytes(2048) == "2 KiB"
    assert format_bytes(64) == "64 B"
    assert format_bytes(8 * 1024**3) == "8 GiB"
    assert format_bandwidth(819.2e9) == "819.2 GB/s"
    assert format_bandwidth(1.2288e12) == "1.2288 TB/s"
    assert format_bandwidth(12) == "12 B/s"


@given(st.integers(min_value=0, max_value=10**15))
def test_duration_decimal_roundtrip(ps: int) -> None:
    """A ps count written as an exact decimal number of ns parses back to the same integer."""
    assert parse_duration_ps(f"{ps // 1000}.{ps % 1000:03d}ns") == ps
    assert parse_duration_ps(f"{ps}ps") == ps


@given(st.integers(min_value=0, max_value=10**14))
def test_format_duration_parses_back(ps: int) -> None:
    text = format_duration_ps(ps)
    back = parse_duration_ps(text.replace(" ", "")) if "e" not in text else None
    if back is not None:
        assert abs(back - ps) <= ps * 1e-5 + 1


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=20), st.from_regex(r"[+-]?\d{0,4}(\.\d{0,4})?(e-?\d{1,3})?\s?[a-zA-Z\u00b5/]{0,4}"),
                 st.integers(), st.floats(), st.none(), st.booleans()))
def test_parsers_only_raise_value_error(value: object) -> None:
    for parse in (parse_duration_ps, parse_size_bytes, parse_frequency_hz, parse_bitrate_bps,
                  parse_energy_pj, parse_power_mw):
        try:
            parse(value)
        except ValueError:
            pass
