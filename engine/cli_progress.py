"""A progress bar on stderr with rate and ETA (tqdm), fed by trainer events."""
from __future__ import annotations

import sys

from tqdm import tqdm

from engine.training.events import CheckpointSaved, Event, MemberFailed, SaveFailed, StepLogged


class Progress:
    def __init__(self, start: int, total: int, disabled: bool = False):
        self.bar = tqdm(total=total, initial=start, unit="step", file=sys.stderr, disable=disabled,
                        dynamic_ncols=True, smoothing=0.1)
        self.rates: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepLogged):
            self.rates[event.member] = event.images_per_s
            if event.step > self.bar.n:
                self.bar.update(event.step - self.bar.n)
            self.bar.set_postfix_str(" ".join(f"{k} {v:.0f} img/s" for k, v in self.rates.items()), refresh=False)
        elif isinstance(event, MemberFailed):
            self.say(f"member {event.member} failed at step {event.step}: {event.message}")
        elif isinstance(event, SaveFailed):
            self.say(f"could not save at step {event.step}: {event.message}")
        elif isinstance(event, CheckpointSaved):
            self.bar.set_description_str(f"saved {event.step}", refresh=False)

    def say(self, message: str) -> None:
        """One line on stderr (above the bar when there is one; tqdm.write alone would pick stdout)."""
        self.bar.write(f"chorus: {message}", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


class FileProgress:
    """Reading a folder's pictures, ``(done, total)`` at a time: a bar on stderr once decoding starts
    (nothing when every picture comes from the decoded cache)."""

    def __init__(self, disabled: bool = False):
        self.disabled = disabled
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if self.disabled or done >= total:
                return
            self.bar = tqdm(total=total, initial=done, unit="file", desc="reading pictures", file=sys.stderr,
                            dynamic_ncols=True, mininterval=0.5, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
