"""Parse and format physical quantities written with explicit units.

memsim keeps every quantity inside the simulator in a fixed integer unit (time in picoseconds, sizes in
bytes, frequencies in hertz, bit rates in bits per second); units appear only at the edges, in YAML
configs and in human-readable output. This module is that edge.

Parsing rules (all parsers):

* The value must be a string holding a number and a unit, e.g. ``"14ns"``, ``"7.8 µs"``, ``"2KiB"``.
  A bare number (``14``, ``"14"``) is rejected, because a number without a unit is the most common way
  a config silently means something else; booleans and other types are rejected too.
* Arithmetic is exact (:class:`fractions.Fraction`), so ``"0.625ns"`` is exactly 625 ps. A value that is
  not a whole number of the internal unit after conversion (``"0.1ps"``, ``"0.5B"``) is an error rather
  than being rounded.
* Negative values are rejected unless ``allow_negative=True``.
* Units are case-sensitive (``ms`` is milli-, ``Ms`` is not a unit) with these spellings:

  ==========  ===========================================================================================
  duration    ``ps ns us µs μs ms s``
  size        IEC binary ``KiB MiB GiB TiB`` (1024**n); SI decimal ``kB KB MB GB TB`` (1000**n); ``B``.
              ``KB`` is read as the SI kilobyte (1000 B), as in drive and network specs; write ``KiB``
              for 1024 B.
  frequency   ``Hz kHz MHz GHz THz``
  bit rate    ``bps kbps Mbps Gbps Tbps`` and ``b/s kb/s Mb/s Gb/s Tb/s``; per-pin transfer rates
              ``T/s kT/s MT/s GT/s`` count one bit per pin per transfer (``6400MT/s`` = ``6.4Gbps``)
  energy      ``fJ pJ nJ uJ µJ μJ mJ J`` (returned in pJ as a float)
  power       ``uW µW μW mW W kW`` (returned in mW as a float)
  ==========  ===========================================================================================

Energies and powers are returned as floats (pJ, mW): they are model coefficients such as 0.44 pJ/bit,
not event times, so they need no exact integer representation.

Errors are :class:`ValueError` with a message such as ``expected a duration like '14ns', got -3``; the
config loader wraps them into :class:`memsim.errors.ConfigError` with the file and YAML path.
"""
from __future__ import annotations

import re
from fractions import Fraction

__all__ = [
    "parse_duration_ps",
    "parse_size_bytes",
    "parse_frequency_hz",
    "parse_bitrate_bps",
    "parse_energy_pj",
    "parse_power_mw",
    "parse_bandwidth_bytes_per_s",
    "parse_flops",
    "format_duration_ps",
    "format_bytes",
    "format_bandwidth",
]

_MICRO = ("u", "\u00b5", "\u03bc")  # ASCII u, MICRO SIGN, GREEK SMALL LETTER MU

_DURATION_PS: dict[str, Fraction] = {"ps": Fraction(1), "ns": Fraction(10**3), "ms": Fraction(10**9),
                                     "s": Fraction(10**12)}
_DURATION_PS.update({f"{m}s": Fraction(10**6) for m in _MICRO})

_SIZE_BYTES: dict[str, Fraction] = {
    "B": Fraction(1),
    "kB": Fraction(1000), "KB": Fraction(1000), "MB": Fraction(1000**2), "GB": Fraction(1000**3),
    "TB": Fraction(1000**4),
    "KiB": Fraction(1024), "MiB": Fraction(1024**2), "GiB": Fraction(1024**3), "TiB": Fraction(1024**4),
}

_FREQUENCY_HZ: dict[str, Fraction] = {"Hz": Fraction(1), "kHz": Fraction(10**3), "MHz": Fraction(10**6),
                                      "GHz": Fraction(10**9), "THz": Fraction(10**12)}

_BITRATE_BPS: dict[str, Fraction] = {}
for _prefix, _scale in (("", 1), ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12)):
    _BITRATE_BPS[f"{_prefix}bps"] = Fraction(_scale)
    _BITRATE_BPS[f"{_prefix}b/s"] = Fraction(_scale)
    if _prefix != "T":
        _BITRATE_BPS[f"{_prefix}T/s"] = Fraction(_scale)  # one bit per pin per transfer
del _prefix, _scale

_ENERGY_PJ: dict[str, Fraction] = {"fJ": Fraction(1, 1000), "pJ": Fraction(1), "nJ": Fraction(10**3),
                                   "mJ": Fraction(10**9), "J": Fraction(10**12)}
_ENERGY_PJ.update({f"{m}J": Fraction(10**6) for m in _MICRO})

_POWER_MW: dict[str, Fraction] = {"mW": Fraction(1), "W": Fraction(10**3), "kW": Fraction(10**6)}
_POWER_MW.update({f"{m}W": Fraction(1, 1000) for m in _MICRO})

# Byte rates of links and memories (SI: GB/s = 1e9 B/s; GiB/s = 2^30 B/s).
_BANDWIDTH_BPS: dict[str, Fraction] = {f"{u}/s": f for u, f in _SIZE_BYTES.items()}

# Arithmetic throughput: FLOP/s (also written FLOPS) and integer-operation rates (OP/s, OPS).
_FLOPS: dict[str, Fraction] = {}
for _prefix, _scale in (("", 1), ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12), ("P", 10**15)):
    for _u in ("FLOPS", "FLOP/s", "OPS", "OP/s"):
        _FLOPS[f"{_prefix}{_u}"] = Fraction(_scale)
del _prefix, _scale, _u

# A decimal number, optional exponent, optional spaces, then a unit made of letters, '/' or µ/μ.
_QUANTITY = re.compile(
    r"^\s*(?P<mant>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eE](?P<exp>[+-]?\d+))?\s*(?P<unit>[^\d\s.+-][^\s]*)\s*$"
)
_MAX_EXPONENT = 30  # keeps Fraction arithmetic cheap on hostile input such as "1e999999999ns"
_MAX_LEN = 100


def _show(value: object) -> str:
    """Render an offending value for an error message, YAML-style and bounded in length."""
    if value is None:
        text = "null"
    elif value is True or value is False:
        text = "true" if value else "false"
    else:
        try:
            text = repr(value)
        except ValueError:  # ints beyond the str-conversion digit limit
            text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _parse(value: object, units: dict[str, Fraction], what: str, example: str,
           allow_negative: bool) -> Fraction:
    """Split ``value`` into number and unit and return the quantity in the table's base unit."""
    expected = f"expected {what} like '{example}', got {_show(value)}"
    if not isinstance(value, str) or len(value) > _MAX_LEN:
        raise ValueError(expected)
    m = _QUANTITY.match(value)
    if m is None:
        raise ValueError(expected)
    unit = m.group("unit")
    if unit not in units:
        known = ", ".join(units)
        raise ValueError(f"unknown unit {unit!r} in {value!r}: expected {what} like '{example}' "
                         f"(units: {known})")
    number = Fraction(m.group("mant"))
    if m.group("exp") is not None:
        exp = int(m.group("exp"))
        if abs(exp) > _MAX_EXPONENT:
            raise ValueError(f"exponent out of range in {value!r}: expected {what} like '{example}'")
        number *= Fraction(10) ** exp
    if number < 0 and not allow_negative:
        raise ValueError(f"expected a non-negative {what.removeprefix('a ').removeprefix('an ')} "
                         f"like '{example}', got {_show(value)}")
    return number * units[unit]


def _whole(q: Fraction, value: str, unit_name: str) -> int:
    if q.denominator != 1:
        raise ValueError(f"{value!r} is not a whole number of {unit_name} ({float(q):g} {unit_name})")
    return q.numerator


def parse_duration_ps(value: object, *, allow_negative: bool = False) -> int:
    """Parse a duration such as ``"14ns"``, ``"0.625ns"``, ``"3.9us"``, ``"7.8 µs"`` into picoseconds.

    Parameters
    ----------
    value : str
        Number and unit (``ps ns us µs μs ms s``).
    allow_negative : bool
        Accept negative durations (default: rejected).

    Returns
    -------
    int
        The duration in picoseconds, exactly.

    Raises
    ------
    ValueError
        If the value has no unit or an unknown one, is negative, or is not a whole number of ps.
    """
    q = _parse(value, _DURATION_PS, "a duration", "14ns", allow_negative)
    return _whole(q, value, "picoseconds")  # type: ignore[arg-type]


def parse_size_bytes(value: object, *, allow_negative: bool = False) -> int:
    """Parse a size such as ``"2KiB"`` (2048) or ``"1KB"`` (1000) into bytes.

    IEC prefixes (``KiB MiB GiB TiB``) are powers of 1024; SI prefixes (``kB KB MB GB TB``) are powers of
    1000; ``B`` is bytes. Lower-case ``b`` (bits) is not a size unit.
    """
    q = _parse(value, _SIZE_BYTES, "a size", "2KiB", allow_negative)
    return _whole(q, value, "bytes")  # type: ignore[arg-type]


def parse_frequency_hz(value: object, *, allow_negative: bool = False) -> int:
    """Parse a frequency such as ``"1.2GHz"`` or ``"300MHz"`` into hertz (must be a whole number)."""
    q = _parse(value, _FREQUENCY_HZ, "a frequency", "1.2GHz", allow_negative)
    return _whole(q, value, "hertz")  # type: ignore[arg-type]


def parse_bitrate_bps(value: object, *, allow_negative: bool = False) -> int:
    """Parse a per-pin bit rate such as ``"6.4Gbps"``, ``"2Gb/s"`` or ``"6400MT/s"`` into bits/s.

    ``MT/s`` counts transfers per pin, i.e. one bit per pin per transfer, so ``6400MT/s`` equals
    ``6.4Gbps``. Byte rates (``GB/s``) are rejected: a pin rate is in bits.
    """
    q = _parse(value, _BITRATE_BPS, "a bit rate", "6.4Gbps", allow_negative)
    return _whole(q, value, "bits per second")  # type: ignore[arg-type]


def parse_energy_pj(value: object, *, allow_negative: bool = False) -> float:
    """Parse an energy such as ``"3.5pJ"`` or ``"1nJ"`` into picojoules (float)."""
    return float(_parse(value, _ENERGY_PJ, "an energy", "3.5pJ", allow_negative))


def parse_power_mw(value: object, *, allow_negative: bool = False) -> float:
    """Parse a power such as ``"120mW"`` or ``"1.2W"`` into milliwatts (float)."""
    return float(_parse(value, _POWER_MW, "a power", "120mW", allow_negative))


def parse_bandwidth_bytes_per_s(value: object, *, allow_negative: bool = False) -> float:
    """Parse a byte rate such as ``"32GB/s"`` (SI, 32e9 B/s) or ``"6GiB/s"`` into bytes per second (float).

    Bit rates (``Gbps``) are rejected here: a link or memory bandwidth is given in bytes per second.
    """
    return float(_parse(value, _BANDWIDTH_BPS, "a bandwidth", "32GB/s", allow_negative))


def parse_flops(value: object, *, allow_negative: bool = False) -> float:
    """Parse an arithmetic rate such as ``"312TFLOPS"``, ``"19.5TFLOP/s"`` or ``"624TOPS"`` (per second)."""
    return float(_parse(value, _FLOPS, "an arithmetic rate", "312TFLOPS", allow_negative))


def _num(x: float) -> str:
    """Up to six significant digits, no trailing zeros, no exponent for ordinary magnitudes."""
    return f"{x:.6g}"


def format_duration_ps(ps: float) -> str:
    """Format picoseconds for people: ``625 -> '625 ps'``, ``12500 -> '12.5 ns'``, ``3.9e6 -> '3.9 us'``.

    The output parses back with :func:`parse_duration_ps` when it has at most six significant digits.
    """
    magnitude = abs(ps)
    for unit, scale in (("s", 10**12), ("ms", 10**9), ("us", 10**6), ("ns", 10**3)):
        if magnitude >= scale:
            return f"{_num(ps / scale)} {unit}"
    return f"{_num(ps)} ps"


def format_bytes(n: float) -> str:
    """Format a byte count with IEC binary prefixes: ``2048 -> '2 KiB'``, ``64 -> '64 B'``."""
    magnitude = abs(n)
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if magnitude >= scale:
            return f"{_num(n / scale)} {unit}"
    return f"{_num(n)} B"


def format_bandwidth(bytes_per_s: float) -> str:
    """Format a bandwidth with SI decimal prefixes, as bandwidths are quoted: ``819.2e9 -> '819.2 GB/s'``."""
    magnitude = abs(bytes_per_s)
    for unit, scale in (("TB/s", 10**12), ("GB/s", 10**9), ("MB/s", 10**6), ("kB/s", 10**3)):
        if magnitude >= scale:
            return f"{_num(bytes_per_s / scale)} {unit}"
    return f"{_num(bytes_per_s)} B/s"
