"""The Optuna side of a sweep: its database, sampler and pruner, and the loop a worker runs:
the search until its budget of trials is finished, then the seed runs."""

import logging
import math
import signal
import time
import warnings

import optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from core.errors import UserError, user_error_in
from sweeps.record import record_trial
from sweeps.spec import Sweep
from sweeps.trial import OverBudget, SearchObjective, SeedObjective, TrialInterrupted

log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, retries
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


def retry(sweep: Sweep) -> RetryFailedTrialCallback:
    """A dead or interrupted trial comes back as a new trial with the same parameters, its
    reports so far and its run folder (to resume from its last.ckpt)."""
    return RetryFailedTrialCallback(max_retry=sweep.max_retry, inherit_intermediate_values=True)


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


def run_one(sweep: Sweep, study: optuna.Study, objective) -> bool:
    """One trial; False once this worker must stop starting trials (over budget)."""
    try:
        study.optimize(
            objective, n_trials=1, callbacks=[lambda s, t: record_trial(sweep, s, t)], gc_after_trial=True
        )
    except OverBudget:
        return False
    except TrialInterrupted:
        trial = trial_numbered(study, objective.number)
        record_trial(sweep, study, trial)
        retry(sweep)(study, trial)
        raise
    except Exception as err:
        if user_error_in(err) is not None:
            raise
        if objective.number is not None:  # Optuna logged the traceback; the sweep goes on
            record_trial(sweep, study, trial_numbered(study, objective.number))
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores Ctrl-C after one
    return True


def trial_numbered(study: optuna.Study, number: int) -> FrozenTrial:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def search(sweep: Sweep, study: optuna.Study, stop: StopRequest, deadline: float | None) -> bool:
    """Trials until the budget is finished across every worker and run; True if the search is
    done (no trial left to run or running anywhere)."""
    objective, total = SearchObjective(sweep, budget(sweep)), budget(sweep)
    while not stop.requested:
        fail_stale_trials(study)
        found = counts(study)
        finished, running, waiting = (
            sum(found[s] for s in FINISHED),
            found[TrialState.RUNNING],
            found[TrialState.WAITING],
        )
        if not waiting and finished + running >= total:
            if not running:
                return True
            time.sleep(sweep.heartbeat_interval)  # others' trials, or dead ones about to go stale
            continue
        if deadline is not None and time.time() >= deadline:
            log.info("timeout: no new trial starts")
            return False
        objective.number = None
        if not run_one(sweep, study, objective):
            return False
    return False


def seed_runs(sweep: Sweep, search_study: optuna.Study, db: RDBStorage, stop: StopRequest) -> optuna.Study:
    """The best `top_k` configurations (and the baseline) once with each seed, as a study of their
    own whose trials are all enqueued by the worker that creates it."""
    try:
        study = optuna.create_study(
            study_name=f"{sweep.name}/seeds",
            storage=db,
            direction="maximize" if sweep.maximize else "minimize",
        )
        for config, params in seed_configs(sweep, search_study).items():
            for seed in sweep.seeds:
                study.enqueue_trial({}, user_attrs={"config": config, "params": params, "seed": seed})
    except optuna.exceptions.DuplicatedStudyError:
        study = open_study(sweep, seeds=True, db=db)
    objective = SeedObjective(sweep)
    while not stop.requested:
        fail_stale_trials(study)
        found = counts(study)
        if found[TrialState.WAITING]:
            objective.number = None
            run_one(sweep, study, objective)
        elif found[TrialState.RUNNING]:
            time.sleep(sweep.heartbeat_interval)
        else:
            break
    return study


def seed_configs(sweep: Sweep, study: optuna.Study) -> dict[str, dict]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = sorted(complete, key=lambda t: t.value, reverse=sweep.maximize)[: sweep.top_k]
    configs = {f"trial_{t.number:03d}": t.params for t in best}
    return {**configs, "baseline": {}} if sweep.baseline else configs


def work(sweep: Sweep, db: RDBStorage, deadline: float | None) -> tuple[optuna.Study, optuna.Study | None]:
    """What one worker does: search, then (once the search is done everywhere) the seed runs."""
    stop = StopRequest()
    try:
        study = open_study(sweep, db=db)
        done = search(sweep, study, stop, deadline)
        seeds = seed_runs(sweep, study, db, stop) if done and sweep.seeds and not stop.requested else None
    finally:
        stop.restore()
    if stop.requested:
        raise TrialInterrupted("SIGTERM")
    return study, seeds
