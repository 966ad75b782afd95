"""Progress lines for long steps: steps done / total and elapsed time, on the log."""

import logging
import time

log = logging.getLogger("cryodiffseg")


class Progress:
    """Log ``label: done/total (elapsed, eta)`` at most every ``min_interval`` seconds, and at the end."""

    def __init__(self, label: str, total: int, min_interval: float = 2.0):
        self.label = label
        self.total = max(int(total), 0)
        self.done = 0
        self.min_interval = min_interval
        self.start = time.monotonic()
        self._last = -float("inf")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def step(self, n: int = 1, detail: str = "") -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= self.min_interval:
            self._last = now
            log.info("%s", self.line(detail))

    def line(self, detail: str = "") -> str:
        elapsed = self.elapsed
        text = f"{self.label}: {self.done}/{self.total} ({elapsed:.1f} s elapsed"
        if 0 < self.done < self.total:
            text += f", ~{elapsed / self.done * (self.total - self.done):.0f} s left"
        text += ")"
        return f"{text} {detail}".rstrip()
