#!/usr/bin/env python3
"""An independent implementation of row-hash spec v1, written from docs/hash-spec.md alone.

It recomputes every value hash, row hash and key fingerprint of row_hash_v1.json and fails on
any difference, proving that the spec page is precise enough to reimplement.

    python3 -m venv .venv && .venv/bin/pip install xxhash==4.1.0
    .venv/bin/python crates/core/tests/golden/reference.py

The only dependency is the `xxhash` package (XXH3). Column types follow the grammar described in
cases.rs next to this file.
"""
import json
import os
import re
import struct
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import xxhash

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "row_hash_v1.json")
UNIT_NANOS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
TAG = {"null": 0x00, "bool": 0x01, "int": 0x02, "float": 0x03, "decimal": 0x04, "string": 0x05,
       "binary": 0x06, "date": 0x07, "timestamp": 0x08, "time": 0x09, "duration": 0x0A,
       "list": 0x10, "struct": 0x11, "map": 0x12}


def parse_type(text):
    """Parses the golden file's type grammar into nested tuples (name, args...)."""
    text = text.strip()
    m = re.fullmatch(r"(\w+)\((.*)\)", text, re.S)
    if not m:
        return (text,)
    name, inner = m.group(1), m.group(2)
    if name == "timestamp":
        unit, _, zone = inner.partition(",")
        return ("timestamp", unit.strip(), zone.strip() or None)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    parts.append(cur)
    if name == "struct":
        fields = []
        for p in parts:
            fname, _, ftype = p.partition(":")
            fields.append((fname.strip(), parse_type(ftype)))
        return ("struct", fields)
    if name in ("list", "large_list", "dict"):
        return (name, parse_type(parts[0]))
    if name == "fixed_list":
        return (name, parse_type(parts[0]), int(parts[1]))
    if name == "map":
        return (name, parse_type(parts[0]), parse_type(parts[1]))
    return (name, *[p.strip() for p in parts])


def family(t):
    name = t[0]
    if name == "dict":
        return family(t[1])
    if name == "null":
        return "null"
    if name == "bool":
        return "bool"
    if re.fullmatch(r"u?int\d+", name):
        return "int"
    if name.startswith("float"):
        return "float"
    if name.startswith("decimal"):
        return "decimal"
    if name in ("utf8", "large_utf8", "utf8_view"):
        return "string"
    if name in ("binary", "large_binary", "binary_view", "fixed_binary"):
        return "binary"
    if name in ("date32", "date64"):
        return "date"
    if name == "timestamp":
        return "timestamp"
    if name in ("time32", "time64"):
        return "time"
    if name == "duration":
        return "duration"
    if name in ("list", "large_list", "fixed_list"):
        return "list"
    return name  # struct, map


def le(value, size):
    return value.to_bytes(size, "little", signed=True)


def to_float(value):
    if isinstance(value, str):
        return {"NaN": float("nan"), "inf": float("inf"), "-inf": float("-inf")}.get(value, None) \
            if value in ("NaN", "inf", "-inf") else float(value)
    return float(value)


def canonical_float_bits(x):
    if x != x:
        return 0x7FF8000000000000
    if x == 0.0:
        return 0
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def naive_to_utc_nanos(local_nanos, zone):
    if zone in ("UTC", "Z"):
        return local_nanos
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)?", zone)
    if m:
        offset = (int(m.group(2)) * 3600 + int(m.group(3) or 0) * 60) * (1 if m.group(1) == "+" else -1)
        return local_nanos - offset * 10**9
    tz = ZoneInfo(zone)
    seconds, sub = divmod(local_nanos, 10**9)
    wall = datetime(1970, 1, 1) + timedelta(seconds=seconds)
    aware = wall.replace(tzinfo=tz, fold=0)  # fold=0: the earlier of a repeated time
    if aware.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != wall:
        raise ValueError(f"{wall} does not exist in {zone}")
    offset = int(aware.utcoffset().total_seconds())
    return local_nanos - offset * 10**9


def encode(t, v, zone):
    fam = family(t)
    tag = TAG[fam]
    if v is None or fam == "null":
        return bytes([tag, 0])
    head = bytes([tag, 1])
    name = t[0]
    if name == "dict":
        return encode(t[1], v, zone)
    if fam == "bool":
        return head + bytes([1 if v else 0])
    if fam == "int":
        return head + le(int(v), 16)
    if fam == "float":
        x = to_float(v)
        if name == "float32":
            x = struct.unpack("<f", struct.pack("<f", x))[0]
        elif name == "float16":
            x = struct.unpack("<e", struct.pack("<e", x))[0]
        return head + canonical_float_bits(x).to_bytes(8, "little")
    if fam == "decimal":
        u, s = int(v), int(t[2])
        if u == 0:
            s = 0
        else:
            while u % 10 == 0:
                u //= 10
                s -= 1
        return head + le(u, 32) + le(s, 4)
    if fam == "string":
        data = v.encode("utf-8")
        return head + le(len(data), 8) + data
    if fam == "binary":
        data = bytes.fromhex(v)
        return head + le(len(data), 8) + data
    if fam == "date":
        days = int(v) if name == "date32" else int(v) // 86_400_000
        return head + le(days, 8)
    if fam == "timestamp":
        nanos = int(v) * UNIT_NANOS[t[1]]
        if t[2] is None:
            if zone is None:
                raise ValueError("naive timestamp without a declared zone")
            nanos = naive_to_utc_nanos(nanos, zone)
        return head + le(nanos, 16)
    if fam == "time":
        return head + le(int(v) * UNIT_NANOS[t[1]], 8)
    if fam == "duration":
        return head + le(int(v) * UNIT_NANOS[t[1]], 16)
    if fam == "list":
        return head + le(len(v), 8) + b"".join(encode(t[1], e, zone) for e in v)
    if fam == "struct":
        out = head + le(len(t[1]), 8)
        for fname, ftype in sorted(t[1], key=lambda f: f[0].encode("utf-8")):
            raw = fname.encode("utf-8")
            out += le(len(raw), 8) + raw + encode(ftype, v.get(fname), zone)
        return out
    if fam == "map":
        entries = sorted((encode(t[1], k, zone), encode(t[2], x, zone)) for k, x in v)
        return head + le(len(entries), 8) + b"".join(k + x for k, x in entries)
    raise ValueError(f"unsupported type {t}")


def seed(name):
    return xxhash.xxh3_64_intdigest(name.encode("utf-8"))


def row_hashes(columns, zone):
    """columns: list of (name, type, values). Returns ({name: [value hashes]}, [row hashes])."""
    ordered = sorted(columns, key=lambda c: c[0].encode("utf-8"))
    value_hashes = {}
    for name, t, values in ordered:
        s = seed(name)
        value_hashes[name] = [xxhash.xxh3_64_intdigest(encode(t, v, zone), seed=s) for v in values]
    n = len(ordered[0][2]) if ordered else 0
    rows = []
    for i in range(n):
        data = b"".join(value_hashes[name][i].to_bytes(8, "little") for name, _, _ in ordered)
        rows.append(xxhash.xxh3_128_intdigest(data))
    return value_hashes, rows


def main():
    with open(GOLDEN, encoding="utf-8") as f:
        golden = json.load(f)
    failures = 0
    for case in golden["cases"]:
        zone = case.get("naive_timezone")
        columns = [(c["name"], parse_type(c["type"]), c["values"]) for c in case["columns"]]
        value_hashes, rows = row_hashes(columns, zone)
        expect = case["expect"]
        got_rows = [f"{h:032x}" for h in rows]
        got_columns = {name: [f"{h:016x}" for h in hs] for name, hs in value_hashes.items()}
        if got_rows != expect["rows"] or got_columns != expect["columns"]:
            failures += 1
            print(f"MISMATCH {case['name']}: rows {got_rows} expected {expect['rows']}")
        if "key" in case:
            key_columns = [c for c in columns if c[0] in case["key"]]
            _, fingerprints = row_hashes(key_columns, zone)
            got = [f"{h:032x}" for h in fingerprints]
            if got != expect["fingerprints"]:
                failures += 1
                print(f"MISMATCH {case['name']}: fingerprints {got} expected {expect['fingerprints']}")
    print(f"{len(golden['cases'])} cases, {failures} mismatches")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
