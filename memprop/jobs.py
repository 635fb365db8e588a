"""Where the long experiments' jobs run: a local process pool (`--jobs N`) or a Dask cluster
(`--scheduler ADDRESS`, or the MEMPROP_SCHEDULER environment variable).

`memprop sweep`, `memprop reproduce` and `memprop sim` campaigns describe their work as `Task`s:
a key, a module-level function and its arguments, seeds included, so that a job's result
depends on nothing else. `run_tasks` returns the results keyed by job, in the order of the job
list, whatever order they finish in and whichever worker ran them; every result goes through
JSON, as the journal stores it, so a resumed run assembles the same report as an
uninterrupted one. Dask is an optional extra (`pip install 'memprop[cluster]'`); no
scheduling is done here beyond handing the jobs over, longest first.

Faults: a local pool whose worker process died is started again for the unfinished jobs; Dask
reschedules a dead worker's jobs itself (`distributed.scheduler.allowed-failures`). Each job's
result is taken once, by key, so nothing is lost or counted twice. The journal (JSON lines,
one finished job each, written as it arrives) lets an interrupted command go on: run it
again with `--resume`, and the jobs whose key, inputs and memprop code match are taken over.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from tqdm.auto import tqdm

from memprop import workers

SCHEDULER_ENV = "MEMPROP_SCHEDULER"
#: Times a local pool is started again after one of its processes died, before giving up
#: (the local counterpart of Dask's distributed.scheduler.allowed-failures, also 3).
LOCAL_RESTARTS = 3
CONNECT_SECONDS = 30      # to reach the scheduler
WORKER_WAIT_SECONDS = 120  # for the first worker to join it
CLUSTER_EXTRA = "pip install 'memprop[cluster]'"
JOURNAL = "journal.jsonl"   # in a command's --out directory


class ClusterError(RuntimeError):
    """The Dask cluster cannot run the jobs (unreachable, no workers, other code, dead workers)."""


class WorkerLost(RuntimeError):
    """Local worker processes kept dying (a job that crashes its process, or no memory)."""


@dataclass(frozen=True)
class Task:
    """One unit of work: `fn(*args)` in a worker; `weight` units on the progress bar."""

    key: str
    fn: Callable
    args: tuple = ()
    weight: int = 1

    def digest(self, code: str) -> str:
        """What the job computes: its function, its arguments and the memprop code."""
        what = pickle.dumps((self.fn.__module__, self.fn.__qualname__, self.args), protocol=4)
        return hashlib.sha256(what + code.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Runner:
    """Where jobs run: `jobs` local processes, or the Dask scheduler at `scheduler`."""

    jobs: int = 2
    scheduler: str | None = None

    def __post_init__(self):
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {self.jobs}")

    @classmethod
    def choose(cls, jobs: int = 2, scheduler: str | None = None) -> Runner:
        """`--scheduler`, else $MEMPROP_SCHEDULER, else `jobs` local processes."""
        return cls(jobs, scheduler or os.environ.get(SCHEDULER_ENV) or None)

    def describe(self) -> str:
        if self.scheduler:
            return f"the Dask scheduler at {self.scheduler}"
        return "1 process" if self.jobs == 1 else f"{self.jobs} worker processes"


@dataclass
class Outcome:
    """The results (keyed by job, in job order) and where they were computed."""

    results: dict[str, Any]
    executor: str                  # for the reports: "2 worker processes", "a Dask cluster (...)"
    workers: int                   # processes, or Dask worker threads
    resumed: list[str] = field(default_factory=list)   # keys taken over from the journal
    ran: int = 0                   # jobs run now


class Journal:
    """Finished jobs, one JSON line each: {"key", "digest", "result"} after a header line."""

    def __init__(self, path: Path, jobs: Sequence[Task], resume: bool):
        self.path = Path(path)
        code = workers.code_digest()
        self.digests = {job.key: job.digest(code) for job in jobs}
        self.found: dict[str, Any] = {}
        lines = [json.dumps({"journal": "memprop", "code": code})]
        if resume:
            if not self.path.is_file():
                raise ValueError(f"nothing to resume: there is no journal at {self.path}")
            for line in self.path.read_text().splitlines()[1:]:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue                    # the line an interruption cut short
                key = entry.get("key") if isinstance(entry, dict) else None
                if key in self.digests and entry.get("digest") == self.digests[key] and key not in self.found:
                    self.found[key] = entry["result"]
                    lines.append(line)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))   # drops cut lines and stale entries
        tmp.replace(self.path)
        self.file = open(self.path, "a")

    def record(self, key: str, text: str) -> None:
        self.file.write(json.dumps({"key": key, "digest": self.digests[key]})[:-1] + f', "result": {text}}}\n')
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def run_tasks(jobs: Sequence[Task], runner: Runner, *, desc: str, unit: str = "job", progress: bool = True,
             journal: Path | None = None, resume: bool = False,
             collect: Callable[[Task, Any], Any] | None = None) -> Outcome:
    """Run `jobs` (first ones first) on `runner` with a bar over finished jobs.

    `collect(job, result)`, on the client, may turn a result into what is kept (the sim campaign
    writes a worker's waveform to a file here); the kept result is what the journal records.
    """
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("job keys must be unique")
    book = Journal(journal, jobs, resume) if journal is not None else None
    results: dict[str, Any] = dict(book.found) if book else {}
    pending = [job for job in jobs if job.key not in results]
    if book and resume:
        click.echo(f"{desc}: {len(results)} of {len(jobs)} jobs taken over from {book.path}", err=True)
    bar = tqdm(total=sum(j.weight for j in jobs), initial=sum(j.weight for j in jobs if j.key in results),
               desc=desc, unit=unit, disable=not progress)

    def done(job: Task, result: Any) -> None:
        if job.key in results:          # a rerun after a worker died: the first result stands
            return
        if collect is not None:
            result = collect(job, result)
        text = json.dumps(result)
        results[job.key] = json.loads(text)
        if book:
            book.record(job.key, text)
        bar.set_postfix_str(job.key, refresh=False)
        bar.update(job.weight)

    try:
        if not pending:
            executor, count = runner.describe(), runner.jobs
        elif runner.scheduler:
            executor, count = _run_dask(pending, runner.scheduler, done, desc)
        else:
            executor, count = _run_local(pending, runner.jobs, done, desc), runner.jobs
    except KeyboardInterrupt:
        if book:
            click.echo(f"\n{desc}: interrupted; {len(results)} of {len(jobs)} jobs are in {book.path}: "
                       f"run the same command with --resume to go on", err=True)
        raise
    finally:
        bar.close()
        if book:
            book.close()
    return Outcome({key: results[key] for key in keys}, executor, count, sorted(book.found) if book else [],
                   len(pending))


# -- local processes ----------------------------------------------------------------------------

def _run_local(pending: list[Task], processes: int, done: Callable[[Task, Any], None], desc: str) -> str:
    if processes == 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):    # restored: this is the caller's process
            for job in pending:
                done(job, job.fn(*job.args))
        return "1 process"
    context = multiprocessing.get_context("spawn")   # no fork of a threaded (BLAS) parent
    finished: set[str] = set()
    restarts = 0
    while pending:
        pool = ProcessPoolExecutor(max_workers=min(processes, len(pending)), mp_context=context)
        with workers.single_threaded_blas():     # the processes start with one BLAS thread
            futures = {pool.submit(workers.call, job.fn, job.args): job for job in pending}
        try:
            for future in as_completed(futures):
                done(futures[future], future.result())
                finished.add(futures[future].key)
        except BrokenProcessPool:
            # keep what finished before the process died, run the rest again in a new pool
            for future, job in futures.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    done(job, future.result())
                    finished.add(job.key)
            restarts += 1
            left = [job for job in pending if job.key not in finished]
            if restarts > LOCAL_RESTARTS:
                raise WorkerLost(f"{desc}: worker processes died {restarts} times; {len(left)} jobs not run "
                                 f"(first: {left[0].key})") from None
            click.echo(f"\n{desc}: a worker process died; running its {len(left)} unfinished jobs again", err=True)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        pending = [job for job in pending if job.key not in finished]
    return f"{processes} worker processes"


# -- Dask ---------------------------------------------------------------------------------------

def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--scheduler needs Dask: {CLUSTER_EXTRA}") from None
    return distributed


def connect(address: str):
    """A Dask client of the scheduler at `address` with at least one worker that runs this code."""
    distributed = _import_distributed()
    try:
        client = distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError (bad address) ...
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
    except Exception:  # noqa: BLE001 - dask's TimeoutError
        client.close()
        raise ClusterError(f"no Dask worker joined the scheduler at {address} within {WORKER_WAIT_SECONDS} s "
                           f"(start some with `dask worker {address} --nthreads 1`)") from None
    try:
        check_workers(client)
    except BaseException:
        client.close()
        raise
    return client


def check_workers(client) -> None:
    """Every worker runs the client's memprop code and numpy; a BLAS kernel unlike this machine's
    is a warning (float results may then differ in the last bits)."""
    mine = workers.facts()
    try:
        theirs = client.run(workers.facts)
    except ImportError as exc:
        raise ClusterError(f"a Dask worker cannot import memprop ({exc}): install memprop on every worker") from None
    for address, facts in sorted(theirs.items()):
        if (facts["code"], facts["numpy"]) != (mine["code"], mine["numpy"]):
            raise ClusterError(f"the Dask worker at {address} runs memprop {facts['memprop']} (code {facts['code']}) "
                               f"with numpy {facts['numpy']}; this machine memprop {mine['memprop']} (code "
                               f"{mine['code']}) with numpy {mine['numpy']}: install the same on every worker")
        if facts["blas"] != mine["blas"]:
            click.echo(f"warning: the Dask worker at {address} uses BLAS {', '.join(facts['blas'])}, this machine "
                       f"{', '.join(mine['blas'])}: float results may differ in the last bits (set "
                       f"OPENBLAS_CORETYPE to one kernel on every machine)", err=True)


def _run_dask(pending: list[Task], address: str, done: Callable[[Task, Any], None], desc: str) -> tuple[str, int]:
    distributed = _import_distributed()
    client = connect(address)
    try:
        info = client.scheduler_info()
        nworkers = len(info["workers"])
        threads = sum(w.get("nthreads", 1) for w in info["workers"].values())
        code, token = workers.code_digest(), uuid.uuid4().hex[:8]
        futures = {}
        for i, job in enumerate(pending):     # first job, highest priority: longest first, as locally
            future = client.submit(workers.call, job.fn, job.args, code, key=f"{desc}-{token}-{i}-{job.key}",
                                   pure=False, priority=len(pending) - i)
            futures[future.key] = (future, job)
        for future in distributed.as_completed([f for f, _ in futures.values()], loop=client.loop):
            job = futures[future.key][1]
            try:
                result = future.result()
            except distributed.KilledWorker as exc:
                raise ClusterError(f"{desc}: job {job.key} was running on workers that died each time ({exc}); "
                                   f"it was not retried again") from None
            except workers.WrongCode as exc:
                raise ClusterError(str(exc)) from None
            done(job, result)
            future.release()
        return f"a Dask cluster ({address}, {nworkers} workers, {threads} threads)", threads
    finally:
        client.close()
