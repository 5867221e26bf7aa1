"""Joins the JSON lines of the ferrax and JAX benchmark runs by workload name and prints
the comparison table (Markdown). Usage: table.py FERRAX.jsonl JAX.jsonl

A file may hold several rounds (several lines per workload): the best (lowest) median
is used."""

import json
import sys


def load(path):
    best = {}
    with open(path) as f:
        for r in map(json.loads, filter(str.strip, f)):
            if r["name"] not in best or r["median_s"] < best[r["name"]]["median_s"]:
                best[r["name"]] = r
    return best


def throughput(r):
    if r is None or not r.get("flops", 1.0):
        return ""
    if "flops" in r:
        return f"{r['flops'] / r['median_s'] / 1e9:.0f} GFLOP/s"
    return f"{r['bytes'] / r['median_s'] / 1e9:.1f} GB/s"


def ms(r):
    return "" if r is None else f"{r['median_s'] * 1e3:.2f}"


def main():
    ferrax, jax = load(sys.argv[1]), load(sys.argv[2])
    print("| workload | ferrax ms | JAX ms | speed ferrax/JAX | ferrax | JAX |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in list(ferrax) + [n for n in jax if n not in ferrax]:
        f, j = ferrax.get(name), jax.get(name)
        ratio = f"{j['median_s'] / f['median_s']:.2f}x" if f and j else ""
        print(f"| {name} | {ms(f)} | {ms(j)} | {ratio} | {throughput(f)} | {throughput(j)} |")
    print()
    print("speed ferrax/JAX = JAX median time / ferrax median time (above 1: ferrax is faster).")
    for side, rows in (("ferrax", ferrax), ("JAX", jax)):
        s, c = rows.get("sum_16M_f32"), rows.get("copy_16M_f32")
        if s and c:
            ratio = (s["bytes"] / s["median_s"]) / (c["bytes"] / c["median_s"])
            print(f"{side}: sum bandwidth = {ratio:.0%} of copy bandwidth (copy counts read + write).")


if __name__ == "__main__":
    main()
