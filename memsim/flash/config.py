"""The ``flash:`` block of a hardware config: a NAND-flash SSD (array, channels, host interface, energy).

What is described
-----------------
* Organisation: channels, packages (chips / "ways") per channel, dies per package, planes per die,
  blocks per plane, pages per block, page size, and the *read granularity*: the smallest unit the
  controller moves out of a page register (a sector or ECC codeword), so that a 4 KiB read of a 16 KiB
  page transfers 4 KiB on the channel. Logical pages are striped over the array in a fixed order
  (``mapping``, a permutation of the letters C W D P = channel, way/package, die, plane; MQSim's default
  page-allocation order CWDP is the default).
* Features: multi-plane operation (one die operation covers several planes), cache read (the page
  register is freed for the next array read while the cache register is transferred), die interleaving
  (other dies of a channel use the bus while one die is busy).
* Timing: tR (one value, or one per page type such as LSB/CSB/MSB), tPROG (likewise), tBERS, the
  channel's per-pin transfer rate and width, and the command/address overhead of one operation on the
  channel.
* Host interface: PCIe generation (or an explicit per-lane rate and line encoding) and lane count, the
  TLP payload size and per-TLP overhead, the per-command latency (NVMe submission, controller firmware,
  completion) and the device's maximum number of outstanding commands.
* Energy: per bit read and written at the device level, per block erase, and static power.

Units are explicit in YAML (``75us``, ``16KiB``, ``1600MT/s``, ``16GT/s``); inside, times are integer
picoseconds, sizes integer bytes and rates integer bits per second.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from memsim.config import yamltree as yt

__all__ = ["FlashConfig", "FlashOrganization", "FlashFeatures", "FlashTiming", "FlashHost", "FlashEnergy",
           "parse_section", "get_preset", "list_presets", "load_flash_config", "PCIE_GENERATIONS"]

#: PCIe generation -> (per-lane rate in bit/s, line-code payload bits, line-code total bits)
PCIE_GENERATIONS: dict[int, tuple[int, int, int]] = {
    1: (2_500_000_000, 8, 10),
    2: (5_000_000_000, 8, 10),
    3: (8_000_000_000, 128, 130),
    4: (16_000_000_000, 128, 130),
    5: (32_000_000_000, 128, 130),
}
_ENCODINGS = {"8b/10b": (8, 10), "128b/130b": (128, 130), "none": (1, 1)}


@dataclass(frozen=True)
class FlashOrganization:
    channels: int
    packages_per_channel: int
    dies_per_package: int
    planes_per_die: int
    blocks_per_plane: int
    pages_per_block: int
    page_bytes: int
    read_granularity_bytes: int
    cell_type: str = "TLC"
    mapping: str = "CWDP"

    @property
    def dies(self) -> int:
        return self.channels * self.packages_per_channel * self.dies_per_package

    @property
    def planes(self) -> int:
        return self.dies * self.planes_per_die

    @property
    def planes_per_channel(self) -> int:
        return self.packages_per_channel * self.dies_per_package * self.planes_per_die

    @property
    def pages(self) -> int:
        return self.planes * self.blocks_per_plane * self.pages_per_block

    @property
    def capacity_bytes(self) -> int:
        return self.pages * self.page_bytes


@dataclass(frozen=True)
class FlashFeatures:
    multi_plane: bool = True
    cache_read: bool = False
    die_interleaving: bool = True


@dataclass(frozen=True)
class FlashTiming:
    """Array and channel timing; durations in ps, ``channel_rate_bps`` per pin."""

    tR_ps: tuple[int, ...]  # one per page type (page index in block modulo the count)
    tPROG_ps: tuple[int, ...]
    tBERS_ps: int
    channel_rate_bps: int
    channel_width_bits: int
    command_overhead_ps: int

    @property
    def channel_bytes_per_s(self) -> float:
        return self.channel_rate_bps * self.channel_width_bits / 8

    def channel_transfer_ps(self, nbytes: int) -> int:
        """Time to move ``nbytes`` over one channel, rounded up to a whole ps."""
        num = nbytes * 8 * 10**12
        den = self.channel_rate_bps * self.channel_width_bits
        return -(-num // den)


@dataclass(frozen=True)
class FlashHost:
    """Host link and NVMe front end."""

    lanes: int
    lane_rate_bps: int
    encoding: tuple[int, int]  # (payload bits, line bits) of the line code
    max_payload_bytes: int
    tlp_overhead_bytes: int
    command_latency_ps: int
    max_queue_depth: int
    pcie_gen: int | None = None
    controller_time_ps: int = 0
    controller_cores: int = 1

    @property
    def raw_bytes_per_s(self) -> float:
        """Link rate after line coding, before packet (TLP) overhead."""
        return self.lanes * self.lane_rate_bps * self.encoding[0] / self.encoding[1] / 8

    @property
    def payload_bytes_per_s(self) -> float:
        """Payload rate of a long transfer (after line coding and TLP overhead)."""
        return self.raw_bytes_per_s * self.max_payload_bytes / (self.max_payload_bytes + self.tlp_overhead_bytes)

    def wire_bytes(self, nbytes: int) -> int:
        tlps = -(-nbytes // self.max_payload_bytes)
        return nbytes + tlps * self.tlp_overhead_bytes

    def transfer_ps(self, nbytes: int) -> int:
        """Time to move ``nbytes`` of payload over the link (TLP overhead and line coding included)."""
        num = self.wire_bytes(nbytes) * 8 * self.encoding[1] * 10**12
        den = self.encoding[0] * self.lane_rate_bps * self.lanes
        return -(-num // den)


@dataclass(frozen=True)
class FlashEnergy:
    read_pj_per_bit: float = 0.0
    write_pj_per_bit: float = 0.0
    erase_pj_per_block: float = 0.0
    static_mw: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class FlashConfig:
    """A resolved, validated flash device (immutable)."""

    name: str
    source: str
    description: str
    organization: FlashOrganization
    features: FlashFeatures
    timing: FlashTiming
    host: FlashHost
    energy: FlashEnergy = field(default_factory=FlashEnergy)
    file: str | None = None

    @property
    def capacity_bytes(self) -> int:
        return self.organization.capacity_bytes

    def limits(self) -> dict[str, float]:
        """Throughput ceilings in bytes/s: channels (data only), host link payload, and array reads."""
        o, t = self.organization, self.timing
        page_ps = t.channel_transfer_ps(o.page_bytes) + t.command_overhead_ps
        chan = o.channels * o.page_bytes / (page_ps * 1e-12)
        planes_per_op = o.planes_per_die if self.features.multi_plane else 1
        array = o.dies * planes_per_op * o.page_bytes / (sum(t.tR_ps) / len(t.tR_ps) * 1e-12)
        return {"channel": chan, "host_link": self.host.payload_bytes_per_s, "array_read": array}


_PRESET_SECTIONS = ("organization", "features", "timing", "host", "energy")
_LIB_ARGS = dict(preset_keys=("inherits", "source", "description", *_PRESET_SECTIONS),
                 section_names=_PRESET_SECTIONS)


def _library() -> yt.PresetLibrary:
    return yt.preset_library("flash", **_LIB_ARGS)


def _durations(node: yt.Node) -> tuple[int, ...]:
    """One duration, or a list of 1-4 durations (one per page type)."""
    one = yt.duration(positive=True)
    if isinstance(node.value, list):
        if not 1 <= len(node.value) <= 4:
            raise node.error(f"expected 1 to 4 durations (one per page type, e.g. [40us, 65us]), "
                             f"got a list of {len(node.value)}")
        return tuple(one(item) for item in node.value)
    return (one(node),)


def _mapping_order(node: yt.Node) -> str:
    v = node.value
    if not isinstance(v, str) or sorted(v.upper()) != sorted("CWDP"):
        raise node.error(f"expected a permutation of the letters C, W, D, P (channel, way/package, die, "
                         f"plane; striping order, fastest first), e.g. 'CWDP', got {yt.show(v)}")
    return v.upper()


def _pcie_gen(node: yt.Node) -> int:
    v = node.value
    if isinstance(v, bool) or not isinstance(v, int) or v not in PCIE_GENERATIONS:
        raise node.error(f"expected a PCIe generation 1 to 5, got {yt.show(v)}")
    return v


_ORG = {
    "channels": yt.Field("channels", yt.count, True),
    "packages_per_channel": yt.Field("packages_per_channel", yt.count, True),
    "dies_per_package": yt.Field("dies_per_package", yt.count, True),
    "planes_per_die": yt.Field("planes_per_die", yt.count, True),
    "blocks_per_plane": yt.Field("blocks_per_plane", yt.count, True),
    "pages_per_block": yt.Field("pages_per_block", yt.count, True),
    "page_size": yt.Field("page_bytes", yt.size(positive=True), True),
    "read_granularity": yt.Field("read_granularity_bytes", yt.size(positive=True), True),
    "cell_type": yt.Field("cell_type", yt.choice("SLC", "MLC", "TLC", "QLC")),
    "mapping": yt.Field("mapping", _mapping_order),
}
_FEAT = {
    "multi_plane": yt.Field("multi_plane", yt.boolean),
    "cache_read": yt.Field("cache_read", yt.boolean),
    "die_interleaving": yt.Field("die_interleaving", yt.boolean),
}
_TIMING = {
    "tR": yt.Field("tR_ps", _durations, True),
    "tPROG": yt.Field("tPROG_ps", _durations, True),
    "tBERS": yt.Field("tBERS_ps", yt.duration(positive=True), True),
    "channel_rate": yt.Field("channel_rate_bps", yt.bitrate(positive=True), True),
    "channel_width_bits": yt.Field("channel_width_bits", yt.count, True),
    "command_overhead": yt.Field("command_overhead_ps", yt.duration(), True),
}
_HOST = {
    "pcie_gen": yt.Field("pcie_gen", _pcie_gen),
    "lanes": yt.Field("lanes", yt.count, True),
    "lane_rate": yt.Field("lane_rate_bps", yt.bitrate(positive=True)),
    "encoding": yt.Field("encoding", yt.choice(*_ENCODINGS)),
    "max_payload": yt.Field("max_payload_bytes", yt.size(positive=True), True),
    "tlp_overhead": yt.Field("tlp_overhead_bytes", yt.size(), True),
    "command_latency": yt.Field("command_latency_ps", yt.duration(), True),
    "max_queue_depth": yt.Field("max_queue_depth", yt.count, True),
    "controller_time": yt.Field("controller_time_ps", yt.duration()),
    "controller_cores": yt.Field("controller_cores", yt.count),
}
_ENERGY = {
    "read_per_bit": yt.Field("read_pj_per_bit", yt.energy()),
    "write_per_bit": yt.Field("write_pj_per_bit", yt.energy()),
    "erase_per_block": yt.Field("erase_pj_per_block", yt.energy()),
    "static_power": yt.Field("static_mw", yt.power()),
    "source": yt.Field("source", yt.any_text),
}


def _build(name: str, layers: yt.Layers) -> FlashConfig:
    org_v, org_n = yt.parse_fields(layers, "organization", _ORG, name)
    org = FlashOrganization(**org_v)
    if org.page_bytes % org.read_granularity_bytes:
        user = [n for n in (org_n["read_granularity"], org_n["page_size"])
                if not (n.file or "").startswith("memsim/presets/")]
        raise (user or [org_n["read_granularity"]])[0].error(
            f"the page size ({org.page_bytes} B) must be a whole number of read units, got "
            f"{org.read_granularity_bytes} B")
    feat_v, _ = yt.parse_fields(layers, "features", _FEAT, name)
    tim_v, tim_n = yt.parse_fields(layers, "timing", _TIMING, name)
    timing = FlashTiming(**tim_v)
    host_v, host_n = yt.parse_fields(layers, "host", _HOST, name)
    gen = host_v.pop("pcie_gen", None)
    enc = host_v.pop("encoding", None)
    if gen is not None:
        for key in ("lane_rate", "encoding"):
            if key in host_n:
                raise host_n[key].error(f"'{key}' follows from pcie_gen {gen}; give one or the other, not both")
        rate, a, b = PCIE_GENERATIONS[gen]
        host_v["lane_rate_bps"], encoding = rate, (a, b)
    else:
        if "lane_rate_bps" not in host_v:
            raise yt.missing(layers, "host", "pcie_gen", name)
        encoding = _ENCODINGS[enc] if enc is not None else _ENCODINGS["none"]
    host = FlashHost(encoding=encoding, pcie_gen=gen, **host_v)
    en_v, _ = yt.parse_fields(layers, "energy", _ENERGY, name)
    src = yt.scalar(layers, "source")
    desc = yt.scalar(layers, "description")
    return FlashConfig(name=name, source=yt.text(src) if src else "",
                       description=yt.any_text(desc) if desc else "", organization=org,
                       features=FlashFeatures(**feat_v), timing=timing, host=host, energy=FlashEnergy(**en_v),
                       file=layers.where.file)


_SECTION = yt.DeviceSection("flash", _library, _build, _PRESET_SECTIONS, "a flash device")


def parse_section(block: yt.Node, root: yt.Node) -> FlashConfig:
    """Parse a top-level ``flash:`` block (``{preset: NAME, organization: {...}, ...}``)."""
    return _SECTION.parse_section(block, root)


get_preset = _SECTION.get_preset
list_presets = _SECTION.list_presets
load_flash_config = _SECTION.load

