#!/usr/bin/env python3
"""The machine code Mesa's lavapipe generates for a matmul kernel, and what its inner loop does.

Mesa's release builds (Debian's included) have no GALLIVM_DEBUG or LP_DEBUG to print a shader's
LLVM IR or assembly, but llvmpipe keeps every compiled shader's object file in Mesa's shader cache
(zstd-compressed after a small header). This script compiles one kernel in a fresh cache folder
(bench/lavapipe_kernel.ts), unpacks the ELF object, disassembles it with objdump, finds the loop
with the most FMAs (the k loop) and counts what its instructions do per iteration:

  fma          vfmadd… on 8 lanes (AVX2: one lane per invocation); mul, add: vmulps, vaddps,
               which is what WGSL's fma() becomes here (Mesa lowers NIR's ffma for llvmpipe)
  gather       vgatherdps / vpgatherdd: one load per lane from 8 addresses
  broadcast    vbroadcastss / vpbroadcastd from memory: one value for every lane (a uniform load)
  vload        a vector load from a buffer (consecutive values into consecutive lanes)
  scalar_load  a 4-byte load from a buffer into a general or xmm register
  lane_insert  vpinsrd / vinsertps: assembling a vector lane by lane
  lane_extract vpextrd / vextractps / vmovd to a general register: a lane's address or value out
  spill        a load or store on the stack (%rsp / %rbp)

  python3 bench/lavapipe_code.py reg16 NT            # a variant of kernels/matmul.ts
  python3 bench/lavapipe_code.py --wgsl FILE.wgsl    # any compute shader
  add --asm to print the loop's instructions
Needs zstd and objdump (Debian: zstd, binutils). Not part of the test suite.
"""

import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compile_kernel(args, cache):
    env = dict(os.environ, MESA_SHADER_CACHE_DIR=cache, XDG_RUNTIME_DIR="/tmp")
    subprocess.run(["deno", "run", "-A", "-q", "bench/lavapipe_kernel.ts", *args], cwd=ROOT,
                   env=env, check=True)


def objects(cache):
    """The ELF objects in a Mesa shader cache folder."""
    out = []
    for d, _, files in os.walk(cache):
        for f in files:
            data = open(os.path.join(d, f), "rb").read()
            i = data.find(b"\x28\xb5\x2f\xfd")  # a zstd frame
            if i < 0:
                continue
            obj = subprocess.run(["zstd", "-d", "-c", "-q"], input=data[i:],
                                 capture_output=True).stdout
            if obj.startswith(b"\x7fELF"):
                out.append(obj)
    return out


def disassemble(obj):
    with tempfile.NamedTemporaryFile(suffix=".o") as f:
        f.write(obj)
        f.flush()
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f.name],
                              capture_output=True, text=True, check=True).stdout
    ins = []
    for line in text.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if m:
            ins.append((int(m.group(1), 16), m.group(2), m.group(3)))
    return ins


def kind(mn, ops):
    mem = "(" in ops
    stack = "(%rsp)" in ops or "(%rbp)" in ops or "(%rsp," in ops
    if mn.startswith(("vfmadd", "vfmsub", "vfnmadd")):
        return "fma"
    if mn in ("vmulps", "vaddps") and not mem:
        return mn[1:4]  # "mul", "add": WGSL's fma() reaches the loop as a multiply and an add
    if "gather" in mn:
        return "gather"
    if stack and (mem):
        return "spill"
    if mn in ("vbroadcastss", "vpbroadcastd", "vbroadcastsd") and mem:
        return "broadcast"
    if mn in ("vmovups", "vmovaps", "vmovdqu", "vmovdqa") and mem and re.search(r"\)\s*,\s*%[xy]mm", ops):
        return "vload"
    if mn in ("vmovss", "vmovd", "mov", "movl", "vpinsrd", "vinsertps") and mem and \
            not re.search(r"%[xy]mm\d+,\s*-?0?x?[0-9a-f]*\(", ops):
        return "scalar_load" if mn not in ("vpinsrd", "vinsertps") else "lane_insert_load"
    if mn in ("vpinsrd", "vinsertps"):
        return "lane_insert"
    if mn in ("vpextrd", "vextractps") or (mn == "vmovd" and re.search(r"%xmm\d+,\s*%e", ops)):
        return "lane_extract"
    return "other"


def hottest_loop(ins):
    """The innermost backward-jump region with the most FMAs: (start index, end index)."""
    addr = {a: i for i, (a, _, _) in enumerate(ins)}
    best = None
    for i, (a, mn, ops) in enumerate(ins):
        if not mn.startswith("j"):
            continue
        m = re.match(r"([0-9a-f]+)", ops)
        if not m or int(m.group(1), 16) >= a or int(m.group(1), 16) not in addr:
            continue
        s = addr[int(m.group(1), 16)]
        fmas = sum(1 for _, n, _ in ins[s:i + 1] if n.startswith("vfmadd") or n == "vmulps")
        key = (fmas, -(i - s))
        if fmas and (best is None or key > best[0]):
            best = (key, s, i)
    return (best[1], best[2]) if best else (0, len(ins) - 1)


def dynamic(loop):
    """Instructions one pass of the loop executes: a loop nested in it (lavapipe's loop over the
    SIMD lanes of a storage-buffer load, `cmp $0x8`) counts once per lane."""
    addr = {a: i for i, (a, _, _) in enumerate(loop)}
    lanes = re.compile(r"\$0x(8|4|10),")
    heads = {}
    for i, (a, mn, ops) in enumerate(loop):
        m = re.match(r"([0-9a-f]+)", ops) if mn.startswith("j") else None
        if not m or int(m.group(1), 16) >= a or int(m.group(1), 16) not in addr:
            continue
        s = addr[int(m.group(1), 16)]
        if s > 0:
            heads[s] = max(heads.get(s, i), i)  # one loop per head: its last backward jump
    extra = collections.Counter()
    inner = 0
    covered = -1
    for s in sorted(heads):
        i = heads[s]
        if i <= covered:
            continue  # nested in a lane loop already counted
        body = loop[s:i + 1]
        trips = next((int(lanes.search(o).group(1), 16) for _, n, o in body
                      if n == "cmp" and lanes.search(o)), None)
        if trips:
            inner += 1
            covered = i
            for _, n, o in body:
                extra[kind(n, o)] += trips - 1
    return inner, extra


def main():
    argv = sys.argv[1:]
    show = "--asm" in argv
    argv = [a for a in argv if a != "--asm"]
    with tempfile.TemporaryDirectory() as cache:
        compile_kernel(argv, cache)
        objs = objects(cache)
    if len(objs) != 1:
        sys.exit(f"expected one compiled shader in the cache, found {len(objs)}")
    ins = disassemble(objs[0])
    s, e = hottest_loop(ins)
    loop = ins[s:e + 1]
    counts = collections.Counter(kind(mn, ops) for _, mn, ops in loop)
    inner, extra = dynamic(loop)
    run = counts + extra
    total = sum(run.values())
    arith = run["mul"] + run["add"] + 2 * run["fma"]
    print(" ".join(argv), {"static": len(loop), "lane_loops": inner, "executed": total,
                           "mul+add": arith, "arith_share": round(arith / total, 3),
                           **dict(sorted(run.items()))},
          "ymm" if any("%ymm" in o for _, _, o in loop) else "xmm")
    if show:
        for a, mn, ops in loop:
            print(f"  {a:6x}  {kind(mn, ops):14s} {mn} {ops}")


if __name__ == "__main__":
    main()
