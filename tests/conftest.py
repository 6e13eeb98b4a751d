"""Test-wide set-up: a throw-away Airflow home and results folder, before Airflow is imported.

Nothing a test does touches the project's own ``airflow_home/``, ``results/`` or ``secrets/``.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest

pytest_plugins = ["tests.servers"]  # S3, SMTP and webhook servers on 127.0.0.1

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "breast_cancer_etl_pipeline"
SCORING_DAG_ID = "breast_cancer_scoring"
#: The airflow command of the interpreter running the tests (the project venv).
AIRFLOW = str(Path(sys.executable).parent / "airflow")

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="bc-pipeline-tests-"))
#: The key that signs the session's releases (etl.releases.signing): one for every worker (they
#: share the runs made once), never the project's own secrets/.
#: (Named once per test run; processes the tests start inherit the name through the environment.)
_KEYS = Path(os.environ.get("BC_PIPELINE_TEST_KEYS") or Path(tempfile.gettempdir()) /
             f"bc-pipeline-keys-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}")
os.environ["BC_PIPELINE_TEST_KEYS"] = str(_KEYS)
os.environ.update(
    {
        "RELEASE_SIGNING_KEY": str(_KEYS / "release-signing-key.pem"),
        "RELEASE_TRUSTED_KEYS": str(_KEYS / "release-signing-key.pub"),
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "RESULTS_DIR": str(_SESSION_DIR / "results"),
        "UPLOAD_URI": str(_SESSION_DIR / "uploads"),
        "SCORING_INBOX": str(_SESSION_DIR / "incoming"),
        "PIPELINE_CONFIG": str(PROJECT_ROOT / "tests" / "fast.toml"),
        # One Fernet key for the session's Airflow processes and the in-process runs
        # (``dag_test``): both read the trigger kwargs the other encrypted in the database.
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        # The stacks the tests start (make airflow, the cluster) live a few minutes and nothing
        # changes their DAG files: their dag-processors parse each file at start-up, and again
        # after 10 minutes, not every 30 s (Airflow's default, kept for users' own stacks).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    }
)
# One thread per numerical library in every test process and the Airflow processes they start
# (scikit-learn's OpenMP, OpenBLAS), as scikit-learn's own test suite does under pytest-xdist:
# three workers share 2 cores, so more threads only spin and wait for each other. Results do not
# depend on it (a run's metrics.json and predictions are byte-identical with 1 or 2 threads);
# 12 % less CPU per DAG run on an idle machine, more on a busy one.
for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(name, "1")
#: The candidates the tests' settings enable (train_model is mapped over them, in this order).
#: Tests read this list; none hard-codes the candidates' names.
CANDIDATES: list[str] = []  # filled below, once the environment is set

for name in ("DATA_PATH", "UPLOAD_CONN_ID",
             # never the project's secrets/connections.json: tests bring their own connections
             "AIRFLOW__SECRETS__BACKEND", "AIRFLOW__SECRETS__BACKEND_KWARGS"):
    os.environ.pop(name, None)


def _enabled_candidates() -> list[str]:
    from etl.settings import load_settings

    return list(load_settings().candidates)


CANDIDATES.extend(_enabled_candidates())


def _make_session_key() -> None:
    from etl.releases.signing import ensure_signing_key

    ensure_signing_key(Path(os.environ["RELEASE_SIGNING_KEY"]))


_make_session_key()


#: Fixtures that start a server (moto's S3 API, SMTP, HTTP receivers, the Drive stand-in).
SERVER_FIXTURES = {"s3_server", "smtp_server", "webhook_server", "drive"}


#: The longest tests, longest first (minutes each). They start first, one per pytest worker, so
#: that none begins late and leaves the other workers idle at the end: ``make test`` hands out
#: tests in collection order, two at a time per worker (``--maxschedchunk 1``), so each long
#: test is followed by a short one (``_longest_first``), not by another long one.
#: The browser test (about 2 minutes) comes after the first three, not beside the image build at
#: the start, where its SQLite stack was seen stalling; in collection order it began late and
#: ran past every other test (seen: a worker's last test ended 30 s after the others').
LONGEST_FIRST = ("tests/e2e/test_docker.py::test_the_image_the_stack_and_the_one_shot_run",
                 "tests/e2e/test_tasks_test.py::test_each_task_in_order_on_a_fresh_date",
                 "tests/e2e/test_approval.py",  # 2.4 min, most of it waiting for the approval timeout
                 "tests/e2e/test_cluster.py", "tests/e2e/test_ui_trigger.py", "tests/e2e/test_tasks_test.py",
                 "tests/e2e/test_gate_statistics.py",
                 # and the fast tier's longest (``make check``: 10-30 s each), first there
                 "tests/etl/test_cli.py::test_steps_chain_with_their_default_paths",
                 "tests/etl/runtime/test_executor.py::test_the_preload_keeps",
                 "tests/etl/ui/test_web.py::test_runs_api_gives", "tests/etl/test_save_results.py::test_readers_never")


def _longest_first(items: list) -> list:
    """``items`` with the ``LONGEST_FIRST`` ones first, in that order, each followed by one of
    the fast tests (tests/dags, tests/etl); then the rest in their order."""
    def rank(item) -> int:
        return next((i for i, p in enumerate(LONGEST_FIRST) if item.nodeid.startswith(p)), len(LONGEST_FIRST))

    long = sorted((i for i in items if rank(i) < len(LONGEST_FIRST)), key=rank)
    fast = [i for i in items if rank(i) == len(LONGEST_FIRST) and "e2e" not in i.keywords][:len(long)]
    ordered = []
    for n, item in enumerate(long):
        ordered += [item, *fast[n:n + 1]]
    placed = {id(i) for i in ordered}
    return ordered + [i for i in items if id(i) not in placed]


def pytest_collection_modifyitems(config, items):
    """Tiers: ``e2e`` (tests/e2e: real Airflow processes, the cluster) and ``server`` (a test
    server on 127.0.0.1); ``make check`` runs everything else. The longest tests go first."""
    for item in items:
        if "e2e" in item.path.relative_to(PROJECT_ROOT).parts:
            item.add_marker(pytest.mark.e2e)
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
    items[:] = _longest_first(items)


#: Each test's time (setup, call and teardown, seconds), slowest first, with the pytest worker
#: that ran it and when it started (seconds after the first test), written after every run of
#: the suite (git-ignored) and named at its end, with when each worker's last test ended (the
#: suite's tail) and any test over ``SLOW_SECONDS`` that is not one of the known long ones
#: (``KNOWN_SLOW``): a slow newcomer is seen at once.
DURATIONS_FILE = PROJECT_ROOT / "test-durations.txt"
SLOW_SECONDS = 60.0
_durations: dict[str, float] = {}
_spans: dict[str, tuple[str, float, float]] = {}  # nodeid: (worker, start, stop), epoch seconds


def pytest_runtest_logreport(report):
    """Add up each test's phases (on the controller too: xdist forwards the workers' reports)."""
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration
    node = getattr(report, "node", None)  # xdist: the worker that sent it
    worker = node.gateway.id if node is not None else "main"
    start = _spans.get(report.nodeid, (worker, report.start, 0.0))[1]
    _spans[report.nodeid] = (worker, start, report.stop)


#: The tests known to take more than ``SLOW_SECONDS``: the longest, started first.
KNOWN_SLOW = LONGEST_FIRST


def _newcomers(durations: dict[str, float]) -> list[str]:
    return [nodeid for nodeid, seconds in durations.items()
            if seconds > SLOW_SECONDS and not nodeid.startswith(KNOWN_SLOW)]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workerinput") or not _durations:
        return
    ordered = sorted(_durations.items(), key=lambda item: -item[1])
    began = min(start for _, start, _ in _spans.values())
    DURATIONS_FILE.write_text("".join(
        f"{seconds:8.1f} s  {_spans[nodeid][0]:>4} at {_spans[nodeid][1] - began:6.0f} s  {nodeid}\n"
        for nodeid, seconds in ordered))
    terminalreporter.write_line(f"each test's duration, slowest first: {DURATIONS_FILE} "
                                f"({len(ordered)} tests, {sum(_durations.values()) / 60:.1f} min of test time)")
    ends: dict[str, float] = {}
    for worker, _, stop in _spans.values():
        ends[worker] = max(ends.get(worker, 0.0), stop - began)
    terminalreporter.write_line("each worker's last test ended at " + ", ".join(
        f"{worker} {end:.0f} s" for worker, end in sorted(ends.items())) + " (after the first test began)")
    for nodeid in _newcomers(dict(ordered)):
        terminalreporter.write_line(f"SLOW: {nodeid} took {_durations[nodeid]:.0f} s (> {SLOW_SECONDS:.0f} s and not "
                                    "in LONGEST_FIRST, tests/conftest.py): make it cheaper, or list it there")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
    if not hasattr(session.config, "workerinput"):  # the controller, after every worker: the shared keys
        shutil.rmtree(_KEYS, ignore_errors=True)


@pytest.fixture(scope="session")
def shipped_csv() -> Path:
    return PROJECT_ROOT / "data" / "wdbc.csv"


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory, shipped_csv) -> Path:
    """60 rows of the shipped data (21 malignant, 39 benign), in the shipped layout."""
    import pandas as pd

    df = pd.read_csv(shipped_csv)
    small = pd.concat(
        [df[df.diagnosis == "M"].head(21), df[df.diagnosis == "B"].head(39)]
    ).sort_values("id")
    path = tmp_path_factory.mktemp("data") / "small.csv"
    small.to_csv(path, index=False)
    return path


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """Environment for a subprocess: this test's own results and upload folders."""
    return {
        **os.environ,
        "RESULTS_DIR": str(tmp_path / "results"),
        "UPLOAD_URI": str(tmp_path / "uploads"),
        "SCORING_INBOX": str(tmp_path / "incoming"),
    }


def run_command(args: list[str], env: dict[str, str], timeout: float = 180, cwd: Path = PROJECT_ROOT):
    """Run a command (from the project root by default); return the completed process."""
    return subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_module(module: str, *args: str, env: dict[str, str]):
    """``python -m <module> <args>`` with this interpreter."""
    return run_command([sys.executable, "-m", module, *args], env=env)


def run_main(module: str, *args: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``python -m <module> <args>`` in this process (its ``main``, with ``env``'s variables):
    the exit status, what it printed and its error output. For a command line whose process is
    not what a test proves (the steps' real processes: tests/etl/test_cli.py's chain)."""
    import importlib

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    status = importlib.import_module(module).main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def module_help(module: str) -> str:
    """What ``python -m <module> --help`` prints, run in this process: the module executed as
    ``__main__`` (``runpy``, its ``if __name__ == "__main__"`` guard included) with that command
    line, without an interpreter start-up that imports pandas and scikit-learn again. (The
    steps' real processes: tests/etl/test_cli.py's chain.)"""
    import contextlib
    import io
    import runpy
    import warnings

    out, argv = io.StringIO(), sys.argv
    sys.argv = [module, "--help"]
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules": imported already
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        raise AssertionError(f"{module} --help did not exit")
    except SystemExit as done:
        assert done.code in (0, None), f"{module} --help exited with {done.code}"
    finally:
        sys.argv = argv
    return out.getvalue()


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder ``name``, filled by ``make(folder)`` once per test session: the first pytest
    worker to ask makes it while holding a lock, the others wait and reuse it (the pattern of
    pytest-xdist's docs, with a lock file in the folder all workers share). Treat it as
    read-only: copy it before changing anything."""
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") \
        else tmp_path_factory.getbasetemp()
    folder = shared / f"made-once-{name}"
    with open(shared / f"made-once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".done").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half-way
            folder.mkdir()
            make(folder)
            (folder / ".done").touch()
    return folder


@pytest.fixture(scope="session")
def full_run(airflow_db, tmp_path_factory) -> tuple[Path, str, str]:
    """``make run DATE=2024-03-01`` with the tests' settings, made once for the session
    (``made_once``) and shared: the whole DAG as a user runs it first (``airflow dags test``
    behind the Makefile's one line per task). Its folder (``results/``, ``uploads/``), Airflow's
    log and what the terminal showed. The suite's only ``make run``, and its one published
    baseline: the container check compares its one-shot run with it, the tests that need a
    published model start from a copy of it (``copy_of``)."""

    from deploy.docker.stack import check_terminal

    def make(root: Path) -> None:
        env = {**os.environ, "RESULTS_DIR": str(root / "results"), "UPLOAD_URI": str(root / "uploads"),
               "SCORING_INBOX": str(root / "incoming"), "PIPELINE_AIRFLOW_HOME": os.environ["AIRFLOW_HOME"],
               "PIPELINE_SECRETS_DIR": str(root / "secrets")}
        proc = run_command(["make", "--no-print-directory", "run", "DATE=2024-03-01"], env=env, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        # The terminal: one line per task and the summary, under 30 lines, naming Airflow's
        # log in this worker's Airflow home (each pytest worker has its own).
        log = check_terminal(proc.stdout, Path(os.environ["AIRFLOW_HOME"]) / "logs" / "make-run")
        (root / "terminal.txt").write_text(proc.stdout)
        shutil.copy(log, root / "dags-test.log")

    root = made_once(tmp_path_factory, "full-run", make)
    return root, (root / "dags-test.log").read_text(), (root / "terminal.txt").read_text()


def copy_of(full_run: tuple[Path, str, str], folder: Path) -> None:
    """The full run's ``results/`` and ``uploads/``, copied into ``folder`` (a test's
    ``tmp_path``: the ``env`` fixture's folders)."""
    for name in ("results", "uploads"):
        shutil.copytree(full_run[0] / name, folder / name, symlinks=True)


def _logical_date(date: str):
    from datetime import datetime

    return datetime.fromisoformat(date).replace(tzinfo=UTC)


def succeeded_tasks(dag_id: str, date: str) -> list[str]:
    """The tasks of the ``dag_id`` run of ``date`` whose every instance succeeded."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).join(
                DagRun, (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id)
            ).where(DagRun.dag_id == dag_id, DagRun.logical_date == _logical_date(date))
        ).all()
    states: dict[str, set] = {}
    for task_id, state in rows:
        states.setdefault(task_id, set()).add(state)
    return sorted(task_id for task_id, seen in states.items() if seen == {"success"})


def dag_test(dag_id: str, date: str, env: dict[str, str], conf: dict | None = None, resume: bool = False):
    """``dag.test()`` in this process: what ``airflow dags test`` does, without starting Airflow
    again (one start-up per pytest worker; the tests where the process itself is the point, a
    kill, the CLI, keep ``airflow dags test``). ``env`` (the ``env`` fixture's, say) is the
    environment of the run, set for its length. Needs ``airflow_db``.

    With ``resume``, the run of that date resumes as a person resumes a failed run in the UI
    (Clear on the failed task, with its downstream): the tasks whose every instance succeeded
    keep their result (their state and XComs; ``dag.test``'s ``mark_success_pattern``), the
    others run again.

    Returns:
        The run's state and each task instance's ``(state, try_number)``, by ``task_id`` (a
        mapped one by ``task_id[map_index]``).
    """
    from airflow.dag_processing.dagbag import DagBag

    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    saved = {k: os.environ.get(k) for k in changed}
    os.environ.update(changed)
    try:
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
        assert bag.import_errors == {}, bag.import_errors
        kept = succeeded_tasks(dag_id, date) if resume else []
        run = bag.dags[dag_id].test(logical_date=_logical_date(date), run_conf=conf,
                                    mark_success_pattern="|".join(map(re.escape, kept)) if kept else None)
        tasks = {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): (ti.state, ti.try_number)
                 for ti in run.get_task_instances()}
        return run.state, tasks
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's SQLite metadata database once; return the Airflow home."""
    proc = run_command([AIRFLOW, "db", "migrate"], env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(os.environ["AIRFLOW_HOME"])


def with_config(env: dict[str, str], path: Path) -> dict[str, str]:
    """``env`` with the config file ``path`` read after the tests' own (``tests/fast.toml``)."""
    return {**env, "PIPELINE_CONFIG": f"{env['PIPELINE_CONFIG']}{os.pathsep}{path}"}


def build_run(run_dir, csv, C: float = 1.0, test_size: float = 0.25, random_state: int = 0,
              candidates=("logistic_regression",), report: bool = True, split: str | None = None,
              nested: bool = False):
    """Run the training DAG's steps (``etl.orchestration.pipeline``, as its tasks do) from ``load_data`` to
    ``make_report`` into ``run_dir`` (without ``report``: to ``evaluate_model``); with
    ``nested``, the nested cross-validation's outer folds too. The gate compares with nothing
    published (an empty results folder beside ``run_dir``). Returns the run folder's paths."""
    from dataclasses import replace

    from etl import storage
    from etl.orchestration import pipeline
    from etl.settings import load_settings
    from etl.storage.layout import RunPaths

    folder = RunPaths(storage.location(run_dir))
    settings = load_settings()
    settings = replace(
        settings,
        candidates={name: settings.candidates.get(name, {}) for name in candidates},
        split=replace(settings.split, method=split or settings.split.method),
        nested_cv=settings.nested_cv if nested else replace(settings.nested_cv, outer_folds=0),
        paths=replace(settings.paths, results_dir=str(folder.root.parent / f".{folder.root.name}-unpublished")),
    )
    run = pipeline.Run.of_folder(settings, folder,
                              {"data_path": csv, "C": C, "test_size": test_size, "random_state": random_state})
    pipeline.run_tasks(run, ["load_data", "preprocess_data", "train_model", "select_model", "nested_cv",
                          "evaluate_model", *(["quality_gate", "make_report"] if report else [])])
    return run.folder


def inputs_of(run_dir, task: str = "save_results"):
    """``task``'s inputs (``etl.catalog.StepInputs``) from the run folder ``run_dir`` (the nested
    folds of the settings for ``evaluate_model``, none for the others)."""
    from etl.runner import resolve_inputs
    from etl.settings import load_settings
    from etl.storage import location
    from etl.storage.layout import RunPaths

    folds = load_settings().nested_cv.count if task == "evaluate_model" else 0
    return resolve_inputs(task, RunPaths(location(run_dir)), folds)


def gate_settings(**changes):
    """The tests' ``[gate]`` (``tests/fast.toml``: no comparison refuses, no sensitivity floor)
    with ``changes``."""
    from dataclasses import replace

    from etl.settings import load_settings

    return replace(load_settings().gate, **changes)


def decide_and_publish(run_dir, results, gate=None, run_info=None, keep_runs: int | None = None,
                       approval: str | None = None) -> dict:
    """The ``quality_gate`` and ``save_results`` steps (``etl.orchestration.pipeline``) on the run folder
    ``run_dir`` against the results folder ``results`` (with ``[release] approval`` set to
    ``approval``): what ``save_results`` returned, or ``{"published": False, "reason": ...}``
    when it published nothing."""
    from dataclasses import replace

    from etl import storage
    from etl.catalog import Skipped
    from etl.orchestration import pipeline
    from etl.settings import load_settings
    from etl.storage.layout import RunPaths

    settings = load_settings()
    settings = replace(settings, gate=gate or settings.gate,
                       paths=replace(settings.paths, results_dir=str(results)),
                       nested_cv=replace(settings.nested_cv, outer_folds=0),
                       retention=replace(settings.retention, keep_runs=keep_runs or settings.retention.keep_runs),
                       release=replace(settings.release, approval=approval or settings.release.approval))
    run = pipeline.Run.of_folder(settings, RunPaths(storage.location(run_dir)), info=run_info)
    pipeline.run_step("quality_gate", run)
    try:
        return pipeline.run_step("save_results", run)
    except Skipped as skipped:
        return {"published": False, "reason": str(skipped)}


@pytest.fixture(scope="session")
def evaluated_runs(tmp_path_factory, small_csv) -> dict[str, Path]:
    """Two evaluated run folders of the small data set, ``old`` (C=0.1, with its nested
    cross-validation) and ``new`` (C=1).

    Copy them (``shutil.copytree``) before changing anything in them.
    """
    root = tmp_path_factory.mktemp("evaluated-runs")
    return {key: build_run(root / key, small_csv, C=C, nested=key == "old").root
            for key, C in (("old", 0.1), ("new", 1.0))}
