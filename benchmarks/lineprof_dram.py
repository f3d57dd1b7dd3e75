"""Line-level profile of the jitted DRAM kernel: where in ``memsim/dram/kernel.py`` the time goes.

Usage::

    python benchmarks/lineprof_dram.py DRAMSim3_HBM2_8Gb_x128 rand [--n 200000] [--seconds 12] [--top 40]

Numba's machine code has no symbols that a profiler can see, so this compiles the kernel afresh with
debug line information (``NUMBA_DEBUGINFO=1``, in a temporary cache: about two minutes), replays the
trace in a loop in a child process, samples that process with Linux ``perf record`` (software clock, so it
works in virtual machines without hardware counters) and maps each sampled address back to its source
line through the DWARF data of the compiled object (``addr2line``). Prints the share of samples per
source line of the kernel, hottest first. Inlined helpers are attributed to their own lines; samples on
code the compiler generated without a line (spills, loop control) are shown as line 0. Then the same
samples summed per block: each helper (a closure, inlined where it is called) and each step of the main
loop, which says where the time goes when no single line stands out.

Needs ``perf`` (Debian: linux-perf) and ``addr2line`` (binutils). Profiling only: not part of the tests.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KERNEL_SRC = Path(__file__).resolve().parent.parent / "memsim" / "dram" / "kernel.py"


def child(preset: str, trace: str, n: int, seconds: float, out: Path) -> None:
    """Replay the trace in a loop after writing the kernel's object code and load address to ``out``."""
    from memsim.config import get_preset
    from memsim.dram import kernel as K
    from memsim.dram.engine import DramEngine, Requests
    from memsim.traces import synthetic

    eng = DramEngine(get_preset(preset))
    a, w = synthetic.REFERENCE_TRACES[trace]()
    a, w = a[:n], w[:n]
    eng.run(Requests(a[:1000], w[:1000]))  # compiles (fresh cache: the object code is in memory)
    cres = next(iter(K.kernel_for(eng.timing.par).jitted.overloads.values()))
    (out / "kernel.o").write_bytes(cres.library._get_compiled_object())
    name = cres.fndesc.llvm_func_name
    (out / "symbol.txt").write_text(f"{name}\n{cres.library.get_pointer_to_function(name)}\n")
    t0 = time.time()
    runs = 0
    while time.time() - t0 < seconds:
        eng.run(Requests(a, w))
        runs += 1
    print(f"{runs} replays of {len(a):,} requests, {(time.time() - t0) / runs:.3f} s each", flush=True)


def analyse(out: Path, top: int) -> None:
    name, ptr = (out / "symbol.txt").read_text().split()
    obj = str(out / "kernel.o")
    nm = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    fields = (ln.split() for ln in nm.splitlines())
    value = next(int(f[0], 16) for f in fields if len(f) == 3 and f[2] == name)
    base = int(ptr) - value  # the load address of the section holding the kernel
    # Numba compiles with the large code model: the code is in .ltext (else .text)
    headers = subprocess.run(["readelf", "-SW", obj], capture_output=True, text=True, check=True).stdout
    section = ".ltext" if " .ltext " in headers else ".text"
    row = next(ln for ln in headers.splitlines() if f" {section} " in ln)
    size = int(row.split(section)[1].split()[3], 16)  # columns after the name: type, address, offset, size
    ips = subprocess.run(["perf", "script", "-i", str(out / "perf.data"), "-F", "ip"],
                         capture_output=True, text=True, check=True).stdout.split()
    counts = collections.Counter(int(ip, 16) - base for ip in ips)
    counts = collections.Counter({o: c for o, c in counts.items() if 0 <= o < size})
    inside = sum(counts.values())
    print(f"{len(ips)} samples, {inside} in the kernel")
    if not inside:
        return
    offs = sorted(counts)
    lines = subprocess.run(["addr2line", "-a", "-j", section, "-e", obj, *map(hex, offs)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    by_line: collections.Counter = collections.Counter()
    cur = None
    for ln in lines:
        if ln.startswith("0x"):
            cur = int(ln, 16)
            continue
        m = re.search(r":(\d+)", ln)
        by_line[int(m.group(1)) if m else 0] += counts[cur]
    src = KERNEL_SRC.read_text().splitlines()
    print(f"{'share':>6s} {'line':>5s}  source (memsim/dram/kernel.py)")
    for line, c in by_line.most_common(top):
        text = src[line - 1].strip() if 0 < line <= len(src) else "(no line: generated code)"
        print(f"{100 * c / inside:5.1f}% {line:5d}  {text[:100]}")
    by_block: collections.Counter = collections.Counter()
    for line, c in by_line.items():
        by_block[block_of(src, line)] += c
    print(f"\n{'share':>6s}  block (a helper, inlined where it is called, or a step of the main loop)")
    for name, c in by_block.most_common():
        print(f"{100 * c / inside:5.1f}%  {name}")


def block_of(src: list[str], line: int) -> str:
    """The helper (``def``) or main-loop step (``# ---- N.`` comment) that source line ``line`` belongs to."""
    if not 0 < line <= len(src):
        return "(no line: generated code)"
    for k in range(line - 1, -1, -1):
        text = src[k].strip()
        if text.startswith("def "):
            return text[4:].split("(")[0] + "()"
        if text.startswith("# ---- "):
            return "step: " + text[7:60]
    return "(module level)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset")
    ap.add_argument("trace", help="a reference trace name: seq, rand, mix2:1, gemv, ...")
    ap.add_argument("--n", type=int, default=200_000, help="requests of the trace to replay (default 200000)")
    ap.add_argument("--seconds", type=float, default=12.0, help="sampling time (default 12)")
    ap.add_argument("--top", type=int, default=40, help="lines to print (default 40)")
    ap.add_argument("--keep", metavar="DIR", help="keep the object code and perf data in DIR (for perf annotate)")
    ap.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.preset, args.trace, args.n, args.seconds + 2, Path(args.child))
        return 0
    missing = [t for t in ("perf", "addr2line", "nm", "readelf") if shutil.which(t) is None]
    if missing:
        print(f"lineprof_dram: needs {', '.join(missing)} on PATH (Debian: linux-perf, binutils)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="memsim-lineprof-") as tmp:
        out = Path(tmp)
        env = dict(os.environ, NUMBA_DEBUGINFO="1", NUMBA_CACHE_DIR=str(out / "numba-cache"))
        print("compiling the kernel with line information (about two minutes) ...", flush=True)
        proc = subprocess.Popen([sys.executable, __file__, args.preset, args.trace, "--n", str(args.n),
                                 "--seconds", str(args.seconds), "--child", tmp], env=env)
        while not (out / "symbol.txt").exists():
            if proc.poll() is not None:
                print("lineprof_dram: the replay process failed", file=sys.stderr)
                return 1
            time.sleep(0.5)
        time.sleep(0.5)
        subprocess.run(["perf", "record", "-q", "-F", "4000", "-p", str(proc.pid),
                        "-o", str(out / "perf.data"), "--", "sleep", str(args.seconds)],
                       check=True, stdout=subprocess.DEVNULL)
        proc.wait()
        analyse(out, args.top)
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("kernel.o", "symbol.txt", "perf.data"):
                shutil.copy2(out / name, keep / name)
            print(f"kept kernel.o, symbol.txt and perf.data in {keep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
