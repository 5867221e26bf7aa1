#!/usr/bin/env python3
"""Measures what expanding the hand-written #[grad] corpus costs the build.

Extracts every item of tests/corpus/*.rs except the #[test] functions (so: the #[grad]
functions, their helper enums and plain functions) into a scratch library crate, then
builds that crate twice, with and without the #[grad] attributes, and prints the time
of each: CPU time of the compiler (robust on a shared machine) and wall time, medians of
3 non-incremental rebuilds after touching, dependencies already built.

usage: tests/corpus/measure_compile.py tests/corpus /tmp/measure .
(set CARGO_TARGET_DIR to a directory of its own: the builds are non-incremental)
"""
import os, re, resource, statistics, subprocess, sys, time

corpus, scratch, ferrax = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
os.makedirs(f"{scratch}/src", exist_ok=True)

def items_without_tests(src: str) -> str:
    out, lines, i = [], src.split("\n"), 0
    while i < len(lines):
        if lines[i].strip() == "#[test]":
            # skip the attribute and the function up to its closing brace at column 0
            i += 1
            while lines[i] != "}":
                i += 1
            i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)

mods = []
for name in sorted(os.listdir(corpus)):
    if not name.endswith(".rs") or name in ("main.rs", "pending.rs"):
        continue
    body = items_without_tests(open(f"{corpus}/{name}").read())
    # Public, so that every function (and every generated one) is compiled to machine
    # code as it is when a test calls it; private unused items would be skipped.
    body = re.sub(r"^fn ", "pub fn ", body, flags=re.M)
    # helpers only used by tests may now be unused
    mods.append((name[:-3], body))

def write(with_grad: bool):
    lib = ["#![allow(dead_code, unused_imports, private_interfaces)]",
           f'#[path = "{os.path.abspath(os.path.join(corpus, "../common/mod.rs"))}"]', "mod common;"]
    for m, body in mods:
        b = body if with_grad else re.sub(r"^#\[grad(\(.*\))?\]\n", "", body, flags=re.M)
        open(f"{scratch}/src/{m}.rs", "w").write(b)
        lib.append(f"mod {m};")
    open(f"{scratch}/src/lib.rs", "w").write("\n".join(lib) + "\n")

open(f"{scratch}/Cargo.toml", "w").write(f"""[package]
name = "corpus_measure"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
ferrax = {{ path = "{ferrax}" }}

[profile.dev.package."*"]
opt-level = 2

[workspace]
""")

ENV = dict(os.environ, CARGO_INCREMENTAL="0")


def cargo_build():
    r = subprocess.run(["cargo", "build", "--quiet", "--offline"], cwd=scratch, capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        sys.exit("build failed:\n" + r.stderr[-4000:])


def build_time():
    cpu, wall = [], []
    for _ in range(3):
        os.utime(f"{scratch}/src/lib.rs")
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
        cargo_build()
        r1, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
        cpu.append((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime))
        wall.append(t1 - t0)
    return statistics.median(cpu), statistics.median(wall)


n = sum(len(re.findall(r"^#\[grad", b, flags=re.M)) for _, b in mods)
write(False)
cargo_build()  # dependencies
plain = build_time()
write(True)
graded = build_time()
print(f"{n} #[grad] functions, crate build without / with #[grad]:")
print(f"  CPU  {plain[0]:.2f} s / {graded[0]:.2f} s: expansion adds {graded[0] - plain[0]:.2f} s")
print(f"  wall {plain[1]:.2f} s / {graded[1]:.2f} s: expansion adds {graded[1] - plain[1]:.2f} s")
