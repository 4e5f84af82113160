"""The traffic router: which version of a model answers an entity (plain Python, no Django).

The routing table is `{version: weight}` (written by rollouts); without one, the Production version
answers everything. An entity always lands on the same version while the table stays the same: the
choice is a hash of its id, not a random draw.
"""

import hashlib


def bucket(key: str) -> float:
    """A stable number in [0, 1) for a key."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def parse_table(raw: dict) -> dict[int, float]:
    """A routing table as Redis returns it (bytes or text), with unusable entries left out."""
    table = {}
    for version, weight in raw.items():
        try:
            number, share = int(version), float(weight)
        except (TypeError, ValueError):
            continue
        if share > 0 and share == share and share != float("inf"):
            table[number] = share
    return table


def choose_version(table: dict[int, float], default: int | None, key: str) -> int | None:
    """The version that answers `key` (an entity id): by weight in the table, else the default."""
    total = sum(table.values())
    if not table or total <= 0:
        return default
    point = bucket(key) * total
    for version in sorted(table):
        point -= table[version]
        if point < 0:
            return version
    return max(table)
