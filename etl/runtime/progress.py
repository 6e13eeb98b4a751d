"""Run ``airflow dags test`` (or any command printing its log) with one line per task on the
terminal and the full log in a file: what ``make run`` and ``make docker-run`` show.

``python -m etl.runtime.progress --log-dir DIR [--verbose] -- airflow dags test <dag> [...]``

Airflow's log goes to ``DIR/dags-test-<UTC time>.log``, whose path is printed first; each task
prints ``task  state  seconds`` when it ends (mapped tasks: one line when their last instance
ends, with the count); ``--verbose`` (``VERBOSE=1`` in make) also passes every log line through.
The exit code is the command's. Standard library only: it runs in the container image too.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
_STATE = re.compile(r"new_state=(\w+)")
_RUN = re.compile(r"DagRun Finished: .*?, state=(\w+)")


def task_lines(log: Iterable[str], expand: dict[str, int] | None = None,
               clock: Callable[[], float] = time.monotonic) -> Iterator[str]:
    """The one-line-per-task view of a ``dags test`` log, as its lines arrive.

    Each time shown is measured here, from the lines' arrival (``clock``): the run's, from its
    first task's start to its end. (Not Airflow's ``run_duration``: ``dags test`` of a past
    logical date counts from that date.)

    Args:
        log: the log's lines, in order.
        expand: how many instances each mapped task has: a mapped task is one line, when its
            last instance ends (a mapped task not named here: when the DAG run ends).
        clock: seconds, monotonic.
    """
    expand = expand or {}
    first_start: float | None = None
    started: dict[tuple[str, str], float] = {}
    state: dict[tuple[str, str], str] = {}
    current: tuple[str, str] | None = None
    mapped: dict[str, list[tuple[str, float]]] = {}

    def line_of(task: str, done: list[tuple[str, float]], is_mapped: bool) -> str:
        label = f"{task} x{len(done)}" if is_mapped else task
        return f"  {label:<24} {'/'.join(sorted({s for s, _ in done})):<10} {sum(t for _, t in done):6.1f} s"

    for line in log:
        if m := _START.search(line):
            current = (m.group(1), m.group(2))
            started[current] = clock()
            first_start = started[current] if first_start is None else first_start
        elif (m := _STATE.search(line)) and current is not None:
            state[current] = m.group(1)
        elif m := _END.search(line):
            key, current = (m.group(1), m.group(2)), None
            now = clock()
            done = (state.pop(key, "done"), now - started.pop(key, now))
            if key[1] == "-1":
                yield line_of(key[0], [done], False)
            else:
                mapped.setdefault(key[0], []).append(done)
                if len(mapped[key[0]]) >= expand.get(key[0], 10**9):
                    yield line_of(key[0], mapped.pop(key[0]), True)
        elif m := _RUN.search(line):
            for task in list(mapped):
                yield line_of(task, mapped.pop(task), True)
            took = clock() - first_start if first_start is not None else 0.0
            yield f"DAG run {m.group(1)} in {took:.0f} s"


def _map_counts() -> dict[str, int]:
    """How many instances each mapped task of the training DAG has, from the settings."""
    from etl.catalog import ParameterError
    from etl.settings import load_settings

    try:
        settings = load_settings()
    except (ParameterError, OSError, ValueError):  # the DAG run will say what is wrong
        return {}
    return {"train_model": len(settings.candidates), "nested_cv": settings.nested_cv.count}


def run(command: list[str], log_dir: Path, verbose: bool = False, out: IO[str] = sys.stdout) -> int:
    """Run ``command``, its output to a new log file in ``log_dir`` and the task lines to ``out``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"dags-test-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.log"
    print(f"Airflow's log: {log_path}{'' if verbose else ' (VERBOSE=1 shows it here)'}", file=out, flush=True)
    with open(log_path, "w", encoding="utf-8") as log, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None

        def lines() -> Iterator[str]:
            for line in proc.stdout:
                log.write(line)
                if verbose:
                    out.write(line)
                yield line

        for summary in task_lines(lines(), _map_counts()):
            print(summary, file=out, flush=True)
        code = proc.wait()
    if code:
        print(f"the DAG run failed (exit {code}): the errors are in {log_path}", file=out, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-dir", type=Path, required=True, help="folder of the full logs")
    p.add_argument("--verbose", action="store_true", help="also print every log line")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no command given (after --)")
    return run(command, a.log_dir, a.verbose)


if __name__ == "__main__":
    raise SystemExit(main())
