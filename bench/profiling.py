"""Sampling profiles of running processes with py-spy, summarised as the top costs per process.

py-spy is not a project dependency: run the bench with ``uv run --with py-spy task bench --
--profile``. Each process is sampled 100 times a second without pausing it (``--nonblocking``),
idle threads left out, so a profile shows where CPU goes. The collapsed stacks are kept in
``<folder>/<process>.txt`` (flamegraph.pl or speedscope read them); ``summarise`` reads them back.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Profiler", "summarise"]

_LINE = re.compile(r" \(([^)]*?):\d+\)")  # "fn (path/file.py:123)" → "fn (path/file.py)"
OURS = ("(patient_notify/", "(function/", "(sandbox/")


class Profiler:
    def __init__(self, folder: Path) -> None:
        executable = shutil.which("py-spy")
        if executable is None:
            raise SystemExit("--profile needs py-spy: uv run --with py-spy task bench -- --profile")
        self.executable, self.folder = executable, folder
        folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def recording(self, pids: Mapping[str, int | None]) -> Iterator[None]:
        """Sample every process while the block runs; py-spy writes its file on SIGINT."""
        samplers = [self._sampler(name, pid) for name, pid in pids.items() if pid is not None]
        try:
            yield
        finally:
            for sampler in samplers:
                sampler.send_signal(signal.SIGINT)
            for sampler in samplers:
                sampler.wait(60)
            (self.folder / "summary.txt").write_text(summarise(self.folder))

    def _sampler(self, name: str, pid: int) -> subprocess.Popen[bytes]:
        command = [self.executable, "record", "--pid", str(pid), "--rate", "100", "--nonblocking", "--gil",
                   "--format", "raw", "--output", str(self.folder / f"{name}.txt")]  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603 - py-spy on our own children


def summarise(folder: Path, top: int = 12) -> str:
    """Per process: samples, and the frames with the most samples, by their own time and inclusive."""
    return "\n".join(_summary(path, top) for path in sorted(folder.glob("*.txt")) if path.name != "summary.txt")


def _summary(path: Path, top: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_LINE.sub(r" (\1)", frame) for frame in stack.split(";")]
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    total = sum(own.values()) or 1
    ours = Counter({frame: n for frame, n in inclusive.items() if any(mark in frame for mark in OURS)})
    # Shares, not CPU seconds: on a busy machine a thread preempted while holding the GIL is still sampled.
    rows = [f"== {path.stem}: {total} samples of the thread holding the GIL, 100 a second"]
    for title, counts in (("own time", own), ("inclusive, below the event loop", inclusive), ("ours", ours)):
        below_loop = [(frame, n) for frame, n in counts.most_common() if n < 0.9 * total][:top]
        rows += [f"  {title}:"] + [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in below_loop]
    return "\n".join(rows)
