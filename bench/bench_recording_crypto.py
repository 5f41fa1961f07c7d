"""Cost of encrypting recordings: the encrypting writer against a plain file, in one run.

    .venv/bin/python bench/bench_recording_crypto.py [--size-mib 256] [--chunk-kib 32]

Writes the same bytes in the same chunks (PyAV hands over 4-64 KB) to a plain buffered file
and through RecordingWriter, fsyncing both at the end, best of ``--repeat`` runs each; then
reads the recording back. Prints throughput, the encrypted/plain ratio and the CPU time the
encryption adds per MB (process CPU, user + system).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.encrypted_recording import (
    DEFAULT_FSYNC_EVERY,
    RecordingReader,
    RecordingWriter,
)
from media.keyring import Keyring, MasterKey

MB = 1_000_000


@dataclass
class Run:
    wall: float
    cpu: float


def chunks(pool: bytes, total: int, size: int) -> Iterator[memoryview]:
    view = memoryview(pool)
    sent = 0
    while sent < total:
        start = sent % (len(pool) - size)
        step = min(size, total - sent)
        yield view[start : start + step]
        sent += step


def measure(action: Callable[[], None], repeat: int) -> Run:
    best: Run | None = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        run = Run(time.perf_counter() - wall, time.process_time() - cpu)
        if best is None or run.wall < best.wall:
            best = run
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="bytes written per run")
    parser.add_argument("--chunk-kib", type=int, default=32, help="size of each write()")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best counts")
    parser.add_argument("--dir", default=".", help="where the files go (same disk for all)")
    args = parser.parse_args()

    total = args.size_mib * 1024 * 1024
    chunk = args.chunk_kib * 1024
    pool = os.urandom(8 * 1024 * 1024 + chunk)  # media is incompressible; cycle through it
    keyring = Keyring(MasterKey.generate())

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-rec-") as tmp:
        plain_path = Path(tmp) / "plain.webm"
        sealed_path = Path(tmp) / "sealed.enc"

        def write_plain() -> None:
            plain_path.unlink(missing_ok=True)
            with plain_path.open("wb") as file:
                for part in chunks(pool, total, chunk):
                    file.write(part)
                file.flush()
                os.fsync(file.fileno())

        def write_sealed(fsync_every: int) -> Callable[[], None]:
            def action() -> None:
                sealed_path.unlink(missing_ok=True)
                with RecordingWriter.create(
                    sealed_path, keyring.current, fsync_every=fsync_every
                ) as writer:
                    for part in chunks(pool, total, chunk):
                        writer.write(part)

            return action

        def read_sealed() -> None:
            with RecordingReader.open(sealed_path, keyring) as reader:
                size = sum(len(part) for part in reader)
            assert size == total

        plain = measure(write_plain, args.repeat)
        sealed = measure(write_sealed(0), args.repeat)
        sealed_synced = measure(write_sealed(DEFAULT_FSYNC_EVERY), args.repeat)
        read = measure(read_sealed, args.repeat)

    mb = total / MB
    print(
        f"{args.size_mib} MiB in {args.chunk_kib} KiB writes, best of {args.repeat}, "
        f"files in {Path(args.dir).resolve()}"
    )
    print(f"{'case':<44} {'MB/s':>8} {'CPU s':>7} {'CPU ms/MB':>10}")
    rows = [
        ("plain file (fsync at close)", plain),
        ("encrypting writer (fsync at close)", sealed),
        (f"encrypting writer (fsync every {DEFAULT_FSYNC_EVERY} segments)", sealed_synced),
        ("reader (authenticate + decrypt)", read),
    ]
    for label, run in rows:
        print(f"{label:<44} {mb / run.wall:8.0f} {run.cpu:7.3f} {1000 * run.cpu / mb:10.2f}")
    print(f"throughput ratio encrypted/plain (same fsync): {plain.wall / sealed.wall:.2f}")
    print(f"throughput ratio with the default fsync policy: {plain.wall / sealed_synced.wall:.2f}")
    overhead = 1000 * (sealed.cpu - plain.cpu) / mb
    print(f"CPU added by encryption: {overhead:.2f} ms per MB")
    # A 1 Mbit/s VP8 + Opus call writes 0.125 MB per media second.
    print(f"  = {overhead * 0.125 / 1000:.5f} CPU-s per media-s at 1 Mbit/s")


if __name__ == "__main__":
    main()
