"""scripts/cpu_load.sh: runs a command with every core kept busy, and cleans up after it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import deadline, wait_until_sync

ROOT = Path(__file__).resolve().parent.parent
# The command lists the script's other children (the busy loops), then exits with 3.
LIST_SIBLINGS = 'ps -o pid= --ppid $PPID | grep -vx " *$$"; exit 3'


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_burners_run_beside_the_command_and_end_with_it() -> None:
    done = subprocess.run(
        ["bash", "scripts/cpu_load.sh", "sh", "-c", LIST_SIBLINGS],
        cwd=ROOT,
        env={**os.environ, "CPU_LOAD_WORKERS": "2", "CPU_LOAD_MAX_SECONDS": "60"},
        capture_output=True,
        text=True,
        timeout=deadline(30),
    )
    assert done.returncode == 3, done.stderr  # the command's own status
    burners = [int(line) for line in done.stdout.split()]
    assert len(burners) == 2, done.stdout
    wait_until_sync(lambda: not any(alive(pid) for pid in burners), within=5)


def test_a_burner_ends_by_itself_at_the_limit() -> None:
    # A command that outlives the limit (it waits for its input to end): the loops stop.
    script = LIST_SIBLINGS.replace("exit 3", "read -r line")
    proc = subprocess.Popen(
        ["bash", "scripts/cpu_load.sh", "sh", "-c", script],
        cwd=ROOT,
        env={**os.environ, "CPU_LOAD_WORKERS": "1", "CPU_LOAD_MAX_SECONDS": "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        burner = int(proc.stdout.readline())
        wait_until_sync(lambda: not alive(burner), within=10)
        assert proc.poll() is None  # the command still runs
    finally:
        proc.stdin.close()  # the command ends
        proc.wait(timeout=deadline(10))
        proc.stdout.close()


def test_without_a_command_it_says_how_to_use_it() -> None:
    done = subprocess.run(
        ["bash", "scripts/cpu_load.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(30),
    )
    assert done.returncode == 2 and "usage" in done.stderr
