"""A run's TensorBoard events, read back: what compare.py and the model card report."""

import logging
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def run_events(folder: Path) -> EventAccumulator:
    """Read every scalar of the run; tensorboard's own INFO lines about which file it reads are muted."""
    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return events


def scalars(events: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every event of `tag`, in the order written; none if it was never logged."""
    if tag not in events.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in events.Scalars(tag)]
