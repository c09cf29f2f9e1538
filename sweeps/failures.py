"""Trials that fail: a streak of them stops the sweep in one line, and a trial stopped by the
user's own error is said in one line, without Optuna's traceback."""

import logging

from optuna.trial import FrozenTrial

from core.errors import UserError, user_error_in


class Failures:
    """Trials that failed in a row in this worker (an error that is not the user's); `limit` of
    them stop the sweep with one line naming the first error and the trials' run folders."""

    def __init__(self, limit: int):
        self.limit, self.streak = limit, []

    def add(self, trial: FrozenTrial, err: BaseException) -> None:
        self.streak.append((trial, err))
        if len(self.streak) < self.limit:
            return
        first = self.streak[0][1]
        message = str(first).strip().splitlines()
        runs = ", ".join(t.user_attrs.get("run_dir") or f"trial {t.number} (no run folder)"
                         for t, _ in self.streak)
        count = len(self.streak)
        raise UserError(f"{count} trial{'s' if count > 1 else ''} failed in a row, the first with "
                        f"{type(first).__name__}: {message[0] if message else ''} (runs: {runs})")

    def reset(self) -> None:
        self.streak = []


class UserErrorTraceback(logging.Filter):
    """Optuna logs a failed trial's traceback, then 'Trial N failed with value None.'; a trial
    stopped by the user's error is said in one line by the entry point instead."""

    def __init__(self):
        super().__init__()
        self.silenced: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and user_error_in(record.exc_info[1]) is not None:
            self.silenced = record.getMessage().split(" failed", 1)[0]  # "Trial N"
            return False
        if self.silenced and record.getMessage().startswith(f"{self.silenced} failed with value"):
            self.silenced = None
            return False
        return True


logging.getLogger("optuna.study._optimize").addFilter(UserErrorTraceback())  # where Optuna logs it
