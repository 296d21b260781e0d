"""The source addresses of the flood generators (syn_1000.py, rst_1000.py), which import it;
it writes no capture of its own.
"""


def distinct_sources(rng, count):
    """`count` different IPv4 sources in 1.0.0.0-99.255.255.255 (last byte 1-254), drawn
    from `rng` and put in an order drawn from it too."""
    sources = set()
    while len(sources) < count:
        sources.add(f"{rng.randint(1, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
    # Sorted first: a set's order changes from run to run (string hashing is randomised).
    order = sorted(sources)
    rng.shuffle(order)
    return order
