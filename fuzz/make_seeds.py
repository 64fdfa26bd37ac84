#!/usr/bin/env python3
"""Write the fuzz seed corpora (fuzz/seeds/<target>/) from format-spec/vectors/*.json.

Each seed has the shape its target expects (see the comments in fuzz_targets/). Run from
anywhere: python3 fuzz/make_seeds.py
"""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
vectors = os.path.join(here, "..", "format-spec", "vectors")
seeds = os.path.join(here, "seeds")


def load(name):
    with open(os.path.join(vectors, name + ".json")) as f:
        return json.load(f)


def put(target, name, data):
    d = os.path.join(seeds, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


h = bytes.fromhex

config = load("config")
put("config", "plaintext", h(config["plaintext"]))
put("config", "object", h(config["object"]))

put("keyfile", "vector", load("keyfile")["json"].encode())

pack = load("pack")
data_end = sum(e["length"] for e in pack["entries"])
put("pack_header", "header", data_end.to_bytes(3, "little") + h(pack["header_plaintext"]))
put("pack_header", "pack", h(pack["pack"]))

for v in load("blobs")["vectors"]:
    selector = v["kind"] | (2 if v["zstd_level"] else 0)
    put("blob", v["name"] + "_payload", bytes([selector]) + h(v["payload"]))

put("index", "plaintext", h(load("index")["plaintext"]))
put("tree", "plaintext", h(load("tree")["plaintext"]))
for v in load("bincode")["vectors"]:
    if v["type"] == "Tree":
        put("tree", "minimal", h(v["encoding"]))
put("snapshot", "plaintext", h(load("snapshot")["plaintext"]))
