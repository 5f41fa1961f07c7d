"""Cost of the remux pass that makes a recording seekable (media/seekable_recording.py).

    .venv/bin/python bench/bench_seekable.py [--seconds 60] [--kbps 800]

Encodes 10 s of 640x480 VP8 at about ``--kbps`` per participant (noise, so the encoder
spends its bitrate), looped to ``--seconds``, and 20 ms Opus packets; muxes two participants
into an encrypted recording as the worker does, then runs the pass and prints its wall and
CPU time (this thread: demux, mux, decrypt, encrypt), per second of media and per MB.

Measured (2 shared cores, load average 30-40 from other jobs; libvpx ignored the bitrate on
noise and gave a 31 Mbit/s file): 60 s of media, 235.7 MB, 9600 packets; the pass took
1.70 CPU-s = 7.2 CPU-ms per MB, wall 37.8 s (disk-bound: the file is read, written and
fsynced once more). A consultation at ~1 Mbit/s per participant (~15 MB a minute for two)
costs about 0.1 CPU-s per minute of media, i.e. ~0.002 CPU-s per media-s, against ~0.05 for
recording it: the pass adds about 4 % to the recording's CPU, once, after the stop.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.encrypted_recording import RecordingWriter
from media.keyring import Keyring, MasterKey
from media.muxer import RecordingMuxer
from media.passthrough import EncodedFrame, parse_vp8_frame
from media.seekable_recording import make_seekable

MB = 1_000_000


def encode_video(seconds: int, kbps: int) -> list[bytes]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 480, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.bit_rate = kbps * 1000
    encoder.gop_size = 60
    encoder.options = {"deadline": "realtime", "cpu-used": "8"}
    out: list[bytes] = []
    noise = os.urandom(640 * 480 * 2)
    for i in range(seconds * 30):
        frame = av.VideoFrame(640, 480, "yuv420p")
        for n, plane in enumerate(frame.planes):
            start = (i * 7919 + n * 104729) % (len(noise) - plane.buffer_size)
            plane.update(noise[start : start + plane.buffer_size])
        frame.pts = i
        out.extend(bytes(p) for p in encoder.encode(frame))
    out.extend(bytes(p) for p in encoder.encode(None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--kbps", type=int, default=800)
    args = parser.parse_args()
    print("encoding 10 s of 640x480 VP8, looped ...", flush=True)
    loop = encode_video(10, args.kbps)  # 300 frames, a keyframe every 60: loops cleanly
    video = [loop[i % len(loop)] for i in range(args.seconds * 30)]
    opus = os.urandom(120)  # the muxer copies packets: their content does not matter here
    keyring = Keyring(MasterKey.generate())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.tcrec"
        writer = RecordingWriter.create(path, keyring.current)
        muxer = RecordingMuxer(writer, ("doctor", "patient"))
        for i in range(args.seconds * 50):
            for n, role in enumerate(("doctor", "patient")):
                arrival = 1000.0 + i * 0.02
                if i * 3 // 5 < len(video) and (i * 3) % 5 < 3:
                    data = video[i * 3 // 5]
                    info = parse_vp8_frame(data)
                    muxer.push(
                        role,
                        n * 2 + 1,
                        EncodedFrame(
                            "video",
                            data,
                            (i * 3 // 5) * 3000,
                            info.keyframe,
                            arrival,
                            info.width,
                            info.height,
                        ),
                    )
                muxer.push(role, n * 2 + 2, EncodedFrame("audio", opus, i * 960, True, arrival))
        mux = muxer.close()
        writer.close()
        size = path.stat().st_size
        wall = time.perf_counter()
        result = make_seekable(path, keyring)
        wall = time.perf_counter() - wall
    print(
        f"media {mux.duration:.1f} s, file {size / MB:.1f} MB "
        f"({size * 8 / mux.duration / 1000:.0f} kbit/s), {result.packets} packets\n"
        f"remux pass: wall {wall:.2f} s, CPU {result.cpu_seconds:.2f} s = "
        f"{result.cpu_seconds / mux.duration:.4f} CPU-s per media-s, "
        f"{result.cpu_seconds / (size / MB) * 1000:.1f} CPU-ms per MB; "
        f"duration written {result.duration:.2f} s"
    )


if __name__ == "__main__":
    main()
