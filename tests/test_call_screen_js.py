"""The call screen's judgements in Node, on the pages' own modules: the connection quality
grade (round trip, loss and jitter only) and "We hear you" (only while the level moves)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import deadline

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"

SCRIPT = """
globalThis.localStorage = { getItem: () => "en", setItem() {} };
const { grade, sample } = await import("./static/call-quality.js");
const { VoiceActivity, HEARD_HOLD_MS } = await import("./static/devices.js");
const base = { rttMs: 20, lossPercent: 0, jitterMs: 5, fps: 30, outgoingKbps: 2000 };
const grades = {
  base: grade(base),
  still_picture: grade({ rttMs: 6, lossPercent: 0, jitterMs: 2, fps: 1, outgoingKbps: 40 }),
  camera_off: grade({ rttMs: 6, lossPercent: 0, jitterMs: null, fps: null, outgoingKbps: null }),
  unknown: grade({ rttMs: null, lossPercent: 0, jitterMs: null }),
  rtt_400: grade({ ...base, rttMs: 400 }),
  loss_3: grade({ ...base, lossPercent: 3 }),
  jitter_50: grade({ ...base, jitterMs: 50 }),
  rtt_900: grade({ ...base, rttMs: 900 }),
  loss_12: grade({ ...base, lossPercent: 12 }),
  jitter_150: grade({ ...base, jitterMs: 150 }),
  rtt_300: grade({ ...base, rttMs: 300 }),
  loss_2: grade({ ...base, lossPercent: 2 }),
  jitter_30: grade({ ...base, jitterMs: 30 }),
};
const report = (entries) => new Map(entries.map((e, i) => [String(i), e]));
const figures = sample(report([
  { type: "candidate-pair", nominated: true, state: "succeeded",
    currentRoundTripTime: 0.006, availableOutgoingBitrate: 300000 },
  { type: "inbound-rtp", kind: "audio", packetsLost: 0, packetsReceived: 500, jitter: 0.004 },
  { type: "inbound-rtp", kind: "video", packetsLost: 0, packetsReceived: 900, jitter: 0.040,
    framesPerSecond: 2 },
]), null);
const videoOnly = sample(report([
  { type: "inbound-rtp", kind: "video", packetsLost: 0, packetsReceived: 900, jitter: 0.012 },
]), null);
const voice = new VoiceActivity();
const hold = HEARD_HOLD_MS;
const steps = [[0.1, 0], [0.6, 100], [0.1, 200], [0.1, 99 + hold], [0.1, 100 + hold], [0.5, 5000]];
const heard = steps.map(([level, now]) => { voice.update(level, now); return voice.heard; });
console.log(JSON.stringify({ grades, figures, videoOnly: videoOnly.jitterMs, heard }));
"""


def run(tmp_path: Path) -> Any:
    shutil.copytree(STATIC, tmp_path / "static", dirs_exist_ok=True)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "run.mjs").write_text(SCRIPT)
    done = subprocess.run(
        ["node", "run.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=deadline(30)
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_quality_judges_round_trip_loss_and_jitter_not_the_frame_rate(tmp_path: Path) -> None:
    grades = run(tmp_path)["grades"]
    # 6 ms and no loss is good whatever the picture does (a still picture, a camera off).
    assert grades["still_picture"] == "good"
    assert grades["camera_off"] == "good"
    assert grades["base"] == grades["unknown"] == "good"
    assert [grades[k] for k in ("rtt_400", "loss_3", "jitter_50")] == ["fair"] * 3
    assert [grades[k] for k in ("rtt_900", "loss_12", "jitter_150")] == ["poor"] * 3
    # The limits themselves are still good.
    assert [grades[k] for k in ("rtt_300", "loss_2", "jitter_30")] == ["good"] * 3


def test_the_sample_takes_the_audio_jitter_and_keeps_the_frame_rate_as_a_figure(
    tmp_path: Path,
) -> None:
    result = run(tmp_path)
    figures = result["figures"]
    assert round(figures["rttMs"]) == 6
    assert round(figures["jitterMs"]) == 4  # audio's, not the burstier video's 40 ms
    assert figures["fps"] == 2
    assert figures["lossPercent"] == 0
    assert round(result["videoOnly"]) == 12  # no audio: the video's


def test_we_hear_you_only_while_the_level_moves(tmp_path: Path) -> None:
    heard = run(tmp_path)["heard"]
    # Quiet; a word; its pause; still within the hold; the hold is over; a word again.
    assert heard == [False, True, True, True, False, True]
