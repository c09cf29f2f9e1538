"""The Optuna side of a sweep: its database, sampler and pruner, and the loop a worker runs:
the search until its budget of trials is finished, then the seed runs."""

import logging
import math
import signal
import time

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from core.errors import UserError, user_error_in
from sweeps.failures import Failures
from sweeps.record import record_trial
from sweeps.spec import Sweep
from sweeps.trial import SearchObjective, SeedObjective, TrialInterrupted

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def storage_url(sweep: Sweep) -> str:
    """sqlite under the sweep's folder by default; `postgresql://` is spelled for psycopg 3, the
    driver this project installs."""
    url = sweep.storage or f"sqlite:///{(sweep.folder / 'study.db').resolve()}"
    return (
        "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if url.startswith("postgresql://")
        else url
    )


def retry(sweep: Sweep) -> RetryHeartbeatStaleTrialCallback:
    """A dead or interrupted trial comes back as a new trial with the same parameters, its
    reports so far and its run folder (to resume from its last.ckpt)."""
    return RetryHeartbeatStaleTrialCallback(max_retry=sweep.max_retry, inherit_intermediate_values=True)


def storage(sweep: Sweep) -> RDBStorage:
    """Heartbeats let any worker tell a trial whose worker died (SIGKILL, a lost machine) from a
    slow one, fail it, and retry it. SQLite waits up to a minute for a lock held by another local
    worker."""
    url = storage_url(sweep)
    sqlite = url.startswith("sqlite")
    if sqlite:
        sweep.folder.mkdir(parents=True, exist_ok=True)
    try:
        return RDBStorage(
            url,
            engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True},
            heartbeat_interval=sweep.heartbeat_interval,
            grace_period=sweep.grace_period,
            heartbeat_stale_trial_callback=retry(sweep),
        )
    except Exception as err:  # SQLAlchemy's errors: a bad URL, a server that does not answer
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--storage {url}: cannot open the study database: {detail}") from None


def sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    if sweep.sampler == "grid":
        space = {key: param.choices for key, param in sweep.params.items()}
        return optuna.samplers.GridSampler(space, seed=sweep.sampler_seed)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=sweep.sampler_seed)
    return optuna.samplers.TPESampler(seed=sweep.sampler_seed)


def pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    """Steps are training texts seen, so warm-up and resources are counted in texts."""
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=sweep.startup_trials, n_warmup_steps=sweep.warmup_texts
        )
    if sweep.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=sweep.warmup_texts or "auto")
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, sweep.warmup_texts))
    return optuna.pruners.NopPruner()


def budget(sweep: Sweep) -> int:
    """The trials to finish; a grid has no more than its combinations."""
    if sweep.sampler == "grid":
        return min(sweep.trials, math.prod(len(param.choices) for param in sweep.params.values()))
    return sweep.trials


def open_study(sweep: Sweep, seeds: bool = False, db: RDBStorage | None = None) -> optuna.Study:
    """The search study (or its seed runs), made on the first run and loaded on the next ones."""
    direction = "maximize" if sweep.maximize else "minimize"
    name = f"{sweep.name}/seeds" if seeds else sweep.name
    study = optuna.create_study(
        study_name=name,
        storage=db or storage(sweep),
        direction=direction,
        sampler=None if seeds else sampler(sweep),
        pruner=pruner(sweep),
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise UserError(
            f"study {name} in {storage_url(sweep)} was made to {study.direction.name.lower()}; "
            f"this sweep file asks to {direction}: give it another name"
        )
    return study


class StopRequest:
    """SIGTERM between trials (during a fit Lightning checkpoints and stops the trial as well):
    no new trial starts. The previous handler comes back with `restore`."""

    def __init__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGTERM, self.request)

    def request(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self.previous)


def counts(study: optuna.Study) -> dict[TrialState, int]:
    found = {state: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        found[trial.state] += 1
    return found


def run_one(sweep: Sweep, study: optuna.Study, objective, failures: Failures) -> None:
    """One trial; one that fails with an error that is not the user's is recorded and counted."""
    objective.number = None
    try:
        study.optimize(
            objective, n_trials=1, callbacks=[lambda s, t: record_trial(sweep, s, t)], gc_after_trial=True
        )
    except TrialInterrupted:
        trial = trial_numbered(study, objective.number)
        record_trial(sweep, study, trial)
        retry(sweep)(study, trial)
        raise
    except Exception as err:
        if user_error_in(err) is not None or objective.number is None:
            raise
        trial = trial_numbered(study, objective.number)  # Optuna logged its traceback
        record_trial(sweep, study, trial)
        failures.add(trial, err)
        return
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores Ctrl-C after one
    failures.reset()


def trial_numbered(study: optuna.Study, number: int) -> FrozenTrial:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def run_trials(sweep: Sweep, study: optuna.Study, objective, stop: StopRequest, deadline: float | None,
               budget: int | None) -> bool:
    """Trials of `study` until none is left to run or running anywhere (True), or until this
    worker must stop (False): the waiting ones (queued seed runs, retries), and new ones while
    fewer than `budget` are finished or running, counted across every worker and run. Two
    workers that ask for the last trial at the same moment both run one, as with Optuna's own
    `MaxTrialsCallback`."""
    failures = Failures(sweep.max_failures)
    while not stop.requested:
        fail_stale_trials(study)
        found = counts(study)
        finished, running = sum(found[s] for s in FINISHED), found[TrialState.RUNNING]
        if not found[TrialState.WAITING] and (budget is None or finished + running >= budget):
            if not running:
                return True
            time.sleep(sweep.heartbeat_interval)  # others' trials, or dead ones about to go stale
            continue
        if deadline is not None and time.time() >= deadline:
            log.info("timeout: no new trial starts")
            return False
        run_one(sweep, study, objective, failures)
    return False


def queue_seed_runs(sweep: Sweep, search_study: optuna.Study, db: RDBStorage) -> optuna.Study:
    """The seed runs' study, with every (configuration, seed) pair it lacks queued: on every run,
    so a worker that died while queueing leaves nothing missing. A pair is there while one of its
    trials is not failed for good (a failed one's retry is queued by Optuna)."""
    study = open_study(sweep, seeds=True, db=db)
    there = {(t.user_attrs.get("config"), t.user_attrs.get("seed"))
             for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL}
    for config, params in seed_configs(sweep, search_study).items():
        for seed in sweep.seeds:
            if (config, seed) not in there:
                study.enqueue_trial({}, user_attrs={"config": config, "params": params, "seed": seed})
    return study


def seed_configs(sweep: Sweep, study: optuna.Study) -> dict[str, dict]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = sorted(complete, key=lambda t: t.value, reverse=sweep.maximize)[: sweep.top_k]
    configs = {f"trial_{t.number:03d}": t.params for t in best}
    return {**configs, "baseline": {}} if sweep.baseline else configs


def work(sweep: Sweep, db: RDBStorage, deadline: float | None,
         multiple: int) -> tuple[optuna.Study, optuna.Study | None]:
    """What one worker does: search, then (once the search is done everywhere) the seed runs.
    `multiple`: the batch sizes' least common multiple, where reports fall."""
    stop = StopRequest()
    seeds = None
    try:
        study = open_study(sweep, db=db)
        done = run_trials(sweep, study, SearchObjective(sweep, multiple), stop, deadline, budget(sweep))
        if done and sweep.seeds and not stop.requested:
            seeds = queue_seed_runs(sweep, study, db)
            run_trials(sweep, seeds, SeedObjective(sweep, multiple), stop, deadline, None)
    finally:
        stop.restore()
    if stop.requested:
        raise TrialInterrupted("SIGTERM")
    return study, seeds
