#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets from the project's test data.

  fuzz/corpus/session/  one file per real connection (testdata/real-sessions),
                        in the input format of nixcap_wire::fuzzing::fuzz_session,
                        once with default limits and once with tiny limits
  fuzz/corpus/nar/      every NAR of testdata/nix-upstream/nars, strict and lenient

Needs Python 3 and the `zstd` command. Run from anywhere:
    python3 fuzz/seed-corpus.py
"""

import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "testdata")
MAX_CHUNK = 0x7FFF
# libFuzzer's default -max_len is 4096; longer seeds are kept but truncated
# by it unless a larger -max_len is given (fuzz/README.md uses 65536).
MAX_CONNECTION = 65536


def load_session(path):
    data = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    if data[:8] != b"NXSESS01":
        sys.exit(f"{path}: not an NXSESS01 file")
    (count,) = struct.unpack_from("<I", data, 8)
    pos = 12
    connections = []
    for _ in range(count):
        (n_chunks,) = struct.unpack_from("<I", data, pos)
        pos += 4
        chunks = []
        for _ in range(n_chunks):
            direction = data[pos]
            (length,) = struct.unpack_from("<I", data, pos + 1)
            pos += 5
            chunks.append((direction, data[pos : pos + length]))
            pos += length
        connections.append(chunks)
    return connections


def encode(flags, chunks):
    out = bytearray([flags])
    for direction, payload in chunks:
        for start in range(0, len(payload), MAX_CHUNK):
            piece = payload[start : start + MAX_CHUNK]
            header = len(piece) | (0x8000 if direction == 1 else 0)
            out += struct.pack("<H", header) + piece
    return bytes(out)


def main():
    session_dir = os.path.join(HERE, "corpus", "session")
    nar_dir = os.path.join(HERE, "corpus", "nar")
    os.makedirs(session_dir, exist_ok=True)
    os.makedirs(nar_dir, exist_ok=True)
    sessions = os.path.join(TESTDATA, "real-sessions")
    written = 0
    for name in sorted(os.listdir(sessions)):
        if not name.endswith(".nxsess.zst"):
            continue
        stem = name[: -len(".nxsess.zst")]
        for index, chunks in enumerate(load_session(os.path.join(sessions, name))):
            if sum(len(payload) for _, payload in chunks) > MAX_CONNECTION:
                continue
            for flags in (0, 1):
                path = os.path.join(session_dir, f"{stem}-{index:03}-{flags}")
                with open(path, "wb") as f:
                    f.write(encode(flags, chunks))
                written += 1
    nars = os.path.join(TESTDATA, "nix-upstream", "nars")
    for name in sorted(os.listdir(nars)):
        with open(os.path.join(nars, name), "rb") as f:
            nar = f.read()
        for flags in (0, 1, 3):
            with open(os.path.join(nar_dir, f"{name}-{flags}"), "wb") as f:
                f.write(bytes([flags]) + nar)
            written += 1
    print(f"wrote {written} seed files under {os.path.join(HERE, 'corpus')}")


if __name__ == "__main__":
    main()
