"""memprop.jobs: the same results, in job order, from one process, a local pool and a 2-worker
Dask LocalCluster; dead workers cost nothing; the journal resumes an interrupted run."""

from __future__ import annotations

import json
import sys

import pytest

from click.testing import CliRunner

from memprop import jobs, workers
from memprop.cli import main
from memprop.jobs import ClusterError, Runner, Task, run_tasks

from .helpers import die_once, fail, interrupt_at, square_after


def squares(n: int = 6) -> list[Task]:
    # the first jobs sleep longest: they finish last, wherever they run
    return [Task(f"x={x}", square_after, (x, 0.05 * (n - x))) for x in range(n)]


def values(results: dict) -> dict:
    return {k: {"x": r["x"], "square": r["square"]} for k, r in results.items()}


def test_results_come_in_job_order_wherever_they_ran(cluster):
    tasks = squares()
    runs = [run_tasks(tasks, runner, desc="t", progress=False)
            for runner in (Runner(1), Runner(2), Runner(2, cluster.scheduler_address))]
    for outcome in runs:
        assert list(outcome.results) == [t.key for t in tasks]
        assert values(outcome.results) == values(runs[0].results)
    assert len({r["pid"] for r in runs[1].results.values()}) == 2        # two local processes did the work
    assert runs[2].workers == 2 and "Dask" in runs[2].executor


def test_the_environment_names_the_scheduler(monkeypatch):
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "tcp://127.0.0.1:8786")
    assert Runner.choose(2).scheduler == "tcp://127.0.0.1:8786"
    assert Runner.choose(2, "tcp://other:1").scheduler == "tcp://other:1"
    monkeypatch.delenv(jobs.SCHEDULER_ENV)
    assert Runner.choose(3) == Runner(3, None)
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        Runner.choose(0)


def test_a_dead_local_worker_has_its_job_run_again(tmp_path, capfd):
    tasks = [Task(f"x={x}", die_once, (x, str(tmp_path / "died"))) for x in range(5)]
    outcome = run_tasks(tasks, Runner(2), desc="t", progress=False, journal=tmp_path / "journal.jsonl")
    assert (tmp_path / "died").exists()                               # one process did die
    assert "a worker process died" in capfd.readouterr().err
    assert outcome.results == {f"x={x}": {"x": x, "square": x * x} for x in range(5)}   # nothing lost
    entries = [json.loads(line)["key"] for line in (tmp_path / "journal.jsonl").read_text().splitlines()[1:]]
    assert sorted(entries) == sorted(outcome.results)                 # nothing counted twice


def test_a_dask_worker_that_dies_mid_job_has_its_job_run_elsewhere(cluster, tmp_path):
    tasks = [Task(f"x={x}", die_once, (x, str(tmp_path / "died"))) for x in range(4)]
    outcome = run_tasks(tasks, Runner(2, cluster.scheduler_address), desc="t", progress=False,
                        journal=tmp_path / "journal.jsonl")
    assert (tmp_path / "died").exists()
    assert outcome.results == {f"x={x}": {"x": x, "square": x * x} for x in range(4)}
    entries = [json.loads(line)["key"] for line in (tmp_path / "journal.jsonl").read_text().splitlines()[1:]]
    assert sorted(entries) == sorted(outcome.results)


def test_an_interrupted_run_resumes_from_its_journal(tmp_path):
    marker = tmp_path / "interrupt"
    marker.touch()
    tasks = [Task(f"x={x}", interrupt_at, (x, 3, str(marker))) for x in range(6)]
    book = tmp_path / "journal.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, Runner(1), desc="t", progress=False, journal=book)
    assert len(book.read_text().splitlines()) == 1 + 3                 # header + the three finished jobs
    with book.open("a") as f:
        f.write('{"key": "x=3", "digest": "cut sh')                    # the line an interruption cut short
    marker.unlink()
    outcome = run_tasks(tasks, Runner(1), desc="t", progress=False, journal=book, resume=True)
    assert outcome.resumed == ["x=0", "x=1", "x=2"] and outcome.ran == 3
    assert outcome.results == {f"x={x}": x * x for x in range(6)}
    assert len(book.read_text().splitlines()) == 1 + 6
    # other inputs under the same keys are other jobs: nothing is taken over
    other = [Task(f"x={x}", interrupt_at, (x, 4, str(marker))) for x in range(6)]
    assert run_tasks(other, Runner(1), desc="t", progress=False, journal=book, resume=True).resumed == []


def test_resume_needs_a_journal(tmp_path):
    with pytest.raises(ValueError, match="nothing to resume"):
        run_tasks(squares(2), Runner(1), desc="t", progress=False, journal=tmp_path / "none.jsonl", resume=True)


@pytest.mark.parametrize("where", ["local", "dask"])
def test_a_failing_job_fails_the_run(where, cluster):
    runner = Runner(2, cluster.scheduler_address if where == "dask" else None)
    with pytest.raises(ArithmeticError, match="job 1 failed"):
        run_tasks([Task("a", square_after, (1,)), Task("b", fail, (1,))], runner, desc="t", progress=False)


def test_workers_with_other_code_are_refused(cluster, monkeypatch):
    monkeypatch.setattr(workers, "code_digest", lambda: "0123456789abcdef")
    with pytest.raises(ClusterError, match="runs memprop .* install the same on every worker"):
        run_tasks(squares(2), Runner(2, cluster.scheduler_address), desc="t", progress=False)


def test_an_unreachable_scheduler_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "CONNECT_SECONDS", 1)
    result = CliRunner().invoke(main, ["sweep", "--quick", "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_without_dask_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)              # import distributed -> ImportError
    monkeypatch.setenv(jobs.SCHEDULER_ENV, "tcp://127.0.0.1:9")
    result = CliRunner().invoke(main, ["reproduce", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "Error: --scheduler needs Dask: pip install 'memprop[cluster]'" in result.output
