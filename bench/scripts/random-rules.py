#!/usr/bin/env python3
"""Random ClassBench-format rules, for a set with no structure to exploit: each address is
a random /0, /8, /16, /24 or /32 (a third of them /0), each port a full range, a random
range or a single port, the protocol TCP, UDP or any.
    bench/scripts/random-rules.py COUNT SEED > FILE"""
import random
import sys

count, seed = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)


def address():
    return ".".join(str(rng.randint(0, 255)) for _ in range(4)) + "/" + str(rng.choice([0, 0, 8, 16, 24, 32]))


def ports():
    a = rng.randint(0, 65535)
    b = rng.randint(a, 65535)
    lo, hi = rng.choice([(0, 65535), (a, b), (a, a)])
    return f"{lo} : {hi}"


for _ in range(count):
    proto = rng.choice(["0x06/0xFF", "0x11/0xFF", "0x00/0x00"])
    print(f"@{address()}\t{address()}\t{ports()}\t{ports()}\t{proto}\t0x0000/0x0000")
