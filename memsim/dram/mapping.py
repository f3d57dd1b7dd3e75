"""Physical address → DRAM coordinates.

Every supported scheme is compiled into one representation, :class:`CompiledMapping`: for each field
(channel, pseudo-channel, rank, bank group, bank, row, column) the list of its output bits, least
significant first, where each output bit is the XOR of a small set of physical address bits. Plain
bit-slicing schemes have one address bit per output bit; Ramulator 2.1's MOP4CLXOR adds XOR terms.
The engine's :func:`decode_transactions` (a jitted loop) splits line requests into transactions and decodes
them in one pass before the timing kernel runs, with byte lookup tables
(:meth:`CompiledMapping.byte_tables`); :meth:`CompiledMapping.decode` applies the bit terms
(:meth:`CompiledMapping.terms`) vectorised in NumPy, for tests and for looking at a mapping, and is the
reference the jitted decoder is tested against.

Schemes
-------
* DRAMSim3-style strings, most significant field first: ``"rorabgbachco"`` (fields ``ro ra bg ba ch co``
  and ``pc`` for a pseudo-channel), placed directly above the transaction offset.
* Ramulator-style names, most significant first, e.g. ``"RoBaRaCoCh"``: ``Ch`` channel, ``Co`` column,
  ``Ra`` the levels between channel and bank group (pseudo-channel, then rank/SID), ``Ba`` bank group
  then bank, ``Ro`` row.
* ``"mop4clxor"``: Ramulator 2.1's cache-line channel interleave followed by MOP4CLXOR, as described in
  the reference README (the exact bit positions are checked in ``tests/test_mapping.py``).
* ``"custom"``: ``bit_order`` names the field of each address bit above the transaction offset,
  least significant first.

Simplification: addresses above the device capacity are rejected rather than wrapped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..config.schema import AddressMapping, DramOrganization

FIELDS = ("ch", "pc", "ra", "bg", "ba", "ro", "co")


def _log2_exact(n: int, what: str) -> int:
    if n <= 0 or n & (n - 1):
        raise ValueError(f"{what} must be a power of two for the address mapping, got {n}")
    return n.bit_length() - 1


def field_widths(org: DramOrganization) -> dict[str, int]:
    """Number of address bits each field takes."""
    return {
        "ch": _log2_exact(org.channels, "channels"),
        "pc": _log2_exact(org.pseudo_channels, "pseudo_channels"),
        "ra": _log2_exact(org.ranks, "ranks"),
        "bg": _log2_exact(org.bank_groups, "bank_groups"),
        "ba": _log2_exact(org.banks_per_group, "banks_per_group"),
        "ro": _log2_exact(org.rows, "rows"),
        "co": _log2_exact(org.bursts_per_row, "bursts per row (row bytes / transaction bytes)"),
    }


@dataclass(frozen=True)
class CompiledMapping:
    """Per field, the address bits (as XOR sets) of each output bit, least significant first."""

    bits: dict[str, tuple[tuple[int, ...], ...]]
    offset_bits: int  # log2(transaction bytes)
    address_bits: int  # highest used address bit + 1 (capacity = 2**address_bits bytes)
    scheme: str

    def terms(self) -> np.ndarray:
        """The mapping as XOR terms for :func:`decode_transactions`: int64 rows (field, shift, mask, dst).

        Field ``f`` (index into ``FIELDS``) is the XOR of ``((addr >> shift) & mask) << dst`` over its rows.
        Runs of plain consecutive bits become one row; an XOR output bit becomes one row per source bit.
        """
        rows = []
        for fi, name in enumerate(FIELDS):
            spec = self.bits[name]
            i = 0
            while i < len(spec):
                if len(spec[i]) == 1:
                    j = i
                    while j + 1 < len(spec) and len(spec[j + 1]) == 1 and spec[j + 1][0] == spec[j][0] + 1:
                        j += 1
                    rows.append((fi, spec[i][0], (1 << (j - i + 1)) - 1, i))
                    i = j + 1
                    continue
                rows.extend((fi, b, 1, i) for b in spec[i])
                i += 1
        return np.array(rows, dtype=np.int64).reshape(-1, 4)

    def byte_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The mapping as byte lookup tables for :func:`decode_transactions`.

        Every field bit is an XOR of address bits, so the fields, packed side by side into one 64-bit
        word, are the XOR over the address's bytes of a per-byte table entry: ``tables[j, v]`` is the
        packed contribution of value ``v`` in byte ``j``. One look-up per address byte replaces one
        shift-and-mask per mapping term (the XOR schemes have dozens). Returns (int64[n_bytes, 256]
        tables, int64[7] shift of each field in the packed word, int64[7] mask of each field).
        """
        shift = np.zeros(len(FIELDS), dtype=np.int64)
        mask = np.zeros(len(FIELDS), dtype=np.int64)
        contrib = [0] * max(1, self.address_bits)
        at = 0
        for fi, name in enumerate(FIELDS):
            spec = self.bits[name]
            shift[fi], mask[fi] = at, (1 << len(spec)) - 1
            for j, srcs in enumerate(spec):
                for b in srcs:
                    contrib[b] ^= 1 << (at + j)
            at += len(spec)
        if at > 63:  # cannot happen for a real organisation: the fields are at most the address bits
            raise ValueError(f"mapping {self.scheme!r}: {at} field bits do not fit one 64-bit word")
        n_bytes = (len(contrib) + 7) // 8
        tables = np.zeros((n_bytes, 256), dtype=np.int64)
        v = np.arange(256)
        for j in range(n_bytes):
            for bit in range(8):
                if 8 * j + bit < len(contrib) and contrib[8 * j + bit]:
                    tables[j, (v >> bit) & 1 == 1] ^= contrib[8 * j + bit]
        return tables, shift, mask

    def decode(self, addr: np.ndarray) -> dict[str, np.ndarray]:
        """Decode byte addresses into field arrays (int64), vectorised.

        Parameters
        ----------
        addr : ndarray of uint64, byte addresses.
        """
        a = np.asarray(addr, dtype=np.uint64)
        out = {name: np.zeros(a.shape, dtype=np.uint64) for name in FIELDS}
        for fi, shift, mask, dst in self.terms().tolist():
            out[FIELDS[fi]] ^= ((a >> np.uint64(shift)) & np.uint64(mask)) << np.uint64(dst)
        return {name: v.astype(np.int64) for name, v in out.items()}


def _from_lsb_order(order: list[str], widths: dict[str, int], offset: int, scheme: str) -> CompiledMapping:
    """Fields listed least significant first, each taking its full width, above ``offset``."""
    bits: dict[str, list[tuple[int, ...]]] = {f: [] for f in FIELDS}
    pos = offset
    for f in order:
        for _ in range(widths[f]):
            bits[f].append((pos,))
            pos += 1
    return CompiledMapping({k: tuple(v) for k, v in bits.items()}, offset, pos, scheme)


def _interleaved_linear(lsb_order: list[str], widths: dict[str, int], offset: int, interleave_bits: int,
                        scheme: str) -> CompiledMapping:
    """Ramulator 2.1 applies its cache-line channel interleave before a linear split: the channel takes
    the bits just above ``2**interleave_bits`` transactions, and the other fields split what remains."""
    ch_lo = offset + interleave_bits
    bits: dict[str, list[tuple[int, ...]]] = {f: [] for f in FIELDS}
    bits["ch"] = [(ch_lo + i,) for i in range(widths["ch"])]
    j = 0
    for f in lsb_order:
        if f == "ch":
            continue
        for _ in range(widths[f]):
            b = offset + j
            bits[f].append((b if b < ch_lo else b + widths["ch"],))
            j += 1
    top = offset + j + widths["ch"]
    return CompiledMapping({k: tuple(v) for k, v in bits.items()}, offset, top, scheme)


def _dramsim3_order(scheme: str) -> list[str]:
    s = scheme.lower()
    if len(s) % 2:
        raise ValueError(f"DRAMSim3-style mapping {scheme!r}: expected two-letter fields such as 'rorabgbachco'")
    order = [s[i:i + 2] for i in range(0, len(s), 2)]
    return order


def _ramulator_order(scheme: str) -> list[str]:
    tokens = [scheme[i:i + 2] for i in range(0, len(scheme), 2)]
    expand = {"Ch": ["ch"], "Co": ["co"], "Ra": ["ra", "pc"], "Ba": ["ba", "bg"], "Ro": ["ro"]}
    order: list[str] = []
    for t in tokens:  # most significant first; within a token, most significant first as well
        if t not in expand:
            raise ValueError(f"Ramulator-style mapping {scheme!r}: unknown level {t!r} (expected Ch, Co, Ra, Ba, Ro)")
        order.extend(expand[t])
    return order


def _mop4clxor(widths: dict[str, int], offset: int, interleave_bits: int) -> CompiledMapping:
    """Ramulator 2.1 CacheLineInterleave + MOP4CLXOR (reference README, 'Ramulator 2.1 address mapping')."""
    ch_lo = offset + interleave_bits
    ch_bits = [(ch_lo + i,) for i in range(widths["ch"])]

    # intra-channel address bit j (above the offset) → physical bit, after removing the channel bits
    def phys(j: int) -> int:
        b = offset + j
        return b if b < ch_lo else b + widths["ch"]

    j = 0
    col_low = min(2, widths["co"])
    col: list[int] = []
    for _ in range(col_low):
        col.append(phys(j))
        j += 1
    level_bits: dict[str, list[int]] = {}
    for f in ("pc", "ra", "bg", "ba"):
        level_bits[f] = [phys(j + i) for i in range(widths[f])]
        j += widths[f]
    for _ in range(widths["co"] - col_low):
        col.append(phys(j))
        j += 1
    level_bits["ro"] = [phys(j + i) for i in range(widths["ro"])]
    j += widths["ro"]
    bits: dict[str, tuple[tuple[int, ...], ...]] = {"ch": tuple(ch_bits), "co": tuple((b,) for b in col)}
    k = 0  # next column bit used as an XOR source
    for f in ("pc", "ra", "bg", "ba", "ro"):
        out = []
        for b in level_bits[f]:
            if k < len(col):
                out.append((b, col[k]))
                k += 1
            else:
                out.append((b,))
        bits[f] = tuple(out)
    return CompiledMapping(bits, offset, phys(j), "mop4clxor")


def compile_mapping(mapping: AddressMapping, org: DramOrganization) -> CompiledMapping:
    """Compile a mapping scheme for one organisation. Raises ValueError on a bad scheme."""
    widths = field_widths(org)
    offset = _log2_exact(org.transaction_bytes, "transaction bytes")
    scheme = mapping.scheme
    if scheme.lower() == "mop4clxor":
        return _mop4clxor(widths, offset, mapping.channel_interleave_bits)
    if scheme.lower() == "custom":
        order = list(mapping.bit_order)
        counts = {f: order.count(f) for f in FIELDS}
        bad = [f for f in order if f not in FIELDS]
        if bad:
            raise ValueError(f"custom bit_order: unknown field {bad[0]!r}; expected one of {', '.join(FIELDS)}")
        wrong = {f: (counts[f], widths[f]) for f in FIELDS if counts[f] != widths[f]}
        if wrong:
            f, (got, want) = next(iter(wrong.items()))
            raise ValueError(f"custom bit_order: field {f!r} needs {want} bits for this organisation, got {got}")
        bits = {f: [] for f in FIELDS}
        for i, f in enumerate(order):
            bits[f].append((offset + i,))
        return CompiledMapping({k: tuple(v) for k, v in bits.items()}, offset, offset + len(order), "custom")
    if scheme[:2] in ("Ro", "Ch", "Co", "Ra", "Ba") and any(c.isupper() for c in scheme[1:]):
        order = _ramulator_order(scheme)
        if mapping.channel_interleave_bits > 0 and widths["ch"] > 0:
            return _interleaved_linear(list(reversed(order)), widths, offset, mapping.channel_interleave_bits,
                                       scheme)
    else:
        order = _dramsim3_order(scheme)
    missing = [f for f in FIELDS if f not in order and widths[f] > 0]
    unknown = [f for f in order if f not in FIELDS]
    if unknown:
        raise ValueError(f"mapping {scheme!r}: unknown field {unknown[0]!r}; expected fields {', '.join(FIELDS)}")
    if missing:
        raise ValueError(f"mapping {scheme!r} has no {missing[0]!r} field, but the organisation needs "
                         f"{widths[missing[0]]} bit(s) for it")
    if len(set(order)) != len(order):
        raise ValueError(f"mapping {scheme!r} names a field twice")
    return _from_lsb_order(list(reversed(order)), widths, offset, scheme)


@njit(cache=True, nogil=True)  # nogil: the engine decodes the next slice on a helper thread
def decode_into(addr, line_bytes, tx_per, tx_bytes, offset_bits, tables, field_shift, field_mask, fan,
                ch, bank, row, txa):
    """Split line requests into ``tx_per`` transactions each and decode them (request-major order) into
    the int64[n * tx_per] arrays ``ch`` (channel), ``bank`` (flat bank index), ``row`` and ``txa``
    (transaction address).

    addr : uint64[n] byte addresses; tables, field_shift, field_mask : from
    :meth:`CompiledMapping.byte_tables`; fan : int64[5], nodes per parent at each level (channels,
    pseudo-channels, ranks, bank groups, banks per group).
    """
    lb = np.uint64(line_bytes)
    nb = tables.shape[0]
    for i in range(addr.shape[0]):
        base = (addr[i] // lb) * lb
        for k in range(tx_per):
            a = np.int64(base + np.uint64(k * tx_bytes))
            p = np.int64(0)
            for j in range(nb):
                p ^= tables[j, (a >> (8 * j)) & 255]
            x = i * tx_per + k
            flat = (p >> field_shift[0]) & field_mask[0]
            ch[x] = flat
            for lv in range(1, 5):  # pseudo-channel, rank, bank group, bank: the flat bank index
                flat = flat * fan[lv] + ((p >> field_shift[lv]) & field_mask[lv])
            bank[x] = flat
            row[x] = (p >> field_shift[5]) & field_mask[5]
            txa[x] = a >> offset_bits


def decode_transactions(addr, line_bytes, tx_per, tx_bytes, offset_bits, tables, field_shift, field_mask,
                        fan):
    """:func:`decode_into` new arrays; returns (channel, flat bank index, row, transaction address).

    The arrays are allocated by NumPy, not in the jitted code: NumPy asks the OS for huge pages for large
    arrays, where memory from Numba's allocator takes a page fault per 4 KiB at first touch (measured on
    the 1 M-request DRAMSim3 HBM2 stream: 46 ms with the arrays allocated in the jitted code, 28 ms so).
    """
    n = addr.shape[0] * tx_per
    out = tuple(np.empty(n, dtype=np.int64) for _ in range(4))
    decode_into(addr, line_bytes, tx_per, tx_bytes, offset_bits, tables, field_shift, field_mask, fan, *out)
    return out
