#!/usr/bin/env python3
"""Measures what expanding the hand-written #[grad] corpus costs the build.

Extracts every item of tests/corpus/*.rs except the #[test] functions (so: the #[grad]
functions, their helper enums and plain functions) into a scratch library crate, then
builds that crate twice, with and without the #[grad] attributes, and prints the wall
time of each (dependencies already built; median of 3 rebuilds after touching).

usage: measure_compile.py CORPUS_DIR SCRATCH_DIR
"""
import os, re, statistics, subprocess, sys, time

corpus, scratch = sys.argv[1], sys.argv[2]
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
        if lines[i].startswith("use crate::common"):
            i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)

mods = []
for name in sorted(os.listdir(corpus)):
    if not name.endswith(".rs") or name == "main.rs":
        continue
    body = items_without_tests(open(f"{corpus}/{name}").read())
    # helpers only used by tests may now be unused
    mods.append((name[:-3], body))

def write(with_grad: bool):
    lib = ["#![allow(dead_code, unused_imports)]"]
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
ferrax = {{ path = "{os.path.abspath(os.path.join(corpus, '../..'))}" }}

[profile.dev.package."*"]
opt-level = 2

[workspace]
""")

def build_time() -> float:
    times = []
    for _ in range(3):
        os.utime(f"{scratch}/src/lib.rs")
        t = time.time()
        r = subprocess.run(["cargo", "build", "--quiet", "--offline"], cwd=scratch, capture_output=True, text=True)
        times.append(time.time() - t)
        if r.returncode != 0:
            sys.exit("build failed:\n" + r.stderr[-4000:])
    return statistics.median(times)

n = sum(len(re.findall(r"^#\[grad", b, flags=re.M)) for _, b in mods)
write(False)
subprocess.run(["cargo", "build", "--quiet", "--offline"], cwd=scratch)  # deps
plain = build_time()
write(True)
subprocess.run(["cargo", "build", "--quiet", "--offline"], cwd=scratch)
graded = build_time()
print(f"{n} #[grad] functions: plain {plain:.2f} s, with #[grad] {graded:.2f} s, expansion adds {graded - plain:.2f} s")
