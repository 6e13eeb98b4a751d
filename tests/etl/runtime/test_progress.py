"""etl.runtime.progress: what make run shows of Airflow's log (one line per task), and the log file."""

import sys
from io import StringIO

from etl.runtime.progress import run, task_lines

LOG = """noise before the run
[DAG TEST] starting task_id=load_data map_index=-1 [airflow]
Task instance state updated new_state=success rows_affected=1
[DAG TEST] end task task_id=load_data map_index=-1 [airflow]
[DAG TEST] starting task_id=train_model map_index=1 [airflow]
Task instance state updated new_state=success rows_affected=1
[DAG TEST] end task task_id=train_model map_index=1 [airflow]
[DAG TEST] starting task_id=train_model map_index=0 [airflow]
Task instance state updated new_state=failed rows_affected=1
[DAG TEST] end task task_id=train_model map_index=0 [airflow]
[DAG TEST] starting task_id=save_results map_index=-1 [airflow]
Task instance state updated new_state=skipped rows_affected=1
[DAG TEST] end task task_id=save_results map_index=-1 [airflow]
DagRun Finished: dag_id=d, run_start_date=2024-03-01 00:00:00+00:00, run_duration=86977364.5, state=failed, run_type=manual
"""


def test_one_line_per_task_and_one_per_mapped_task_when_its_last_instance_ends():
    ticks = iter(range(0, 1000, 3))  # a clock that advances 3 s at each reading
    lines = list(task_lines(LOG.splitlines(), {"train_model": 2}, clock=lambda: next(ticks)))
    assert [line.split()[:2] for line in lines[:-1]] == [
        ["load_data", "success"], ["train_model", "x2"], ["save_results", "skipped"]]
    assert "failed/success" in lines[1]  # the states of its instances
    assert lines[0].split()[-2:] == ["3.0", "s"]  # load_data: started at 0, ended at 3
    # The run's time as measured, from the first task's start: not Airflow's run_duration, which
    # `dags test` of a past logical date (make run DATE=...) counts from that date.
    assert lines[-1] == "DAG run failed in 24 s"


def test_a_mapped_task_of_unknown_count_is_shown_when_the_run_ends():
    lines = list(task_lines(LOG.splitlines()))
    assert [line.split()[0] for line in lines] == ["load_data", "save_results", "train_model", "DAG"]


def test_the_full_log_goes_to_a_file_named_first_and_the_exit_code_is_the_commands(tmp_path):
    out = StringIO()
    code = run([sys.executable, "-c", f"import sys; sys.stdout.write({LOG!r}); sys.exit(3)"], tmp_path, out=out)
    printed = out.getvalue().splitlines()
    (log,) = tmp_path.glob("dags-test-*.log")
    assert code == 3 and log.read_text() == LOG
    assert printed[0].startswith(f"Airflow's log: {log}") and "noise before the run" not in out.getvalue()
    assert printed[-1] == f"the DAG run failed (exit 3): the errors are in {log}"
    verbose = StringIO()
    run([sys.executable, "-c", f"print({LOG!r})"], tmp_path / "v", verbose=True, out=verbose)
    assert "noise before the run" in verbose.getvalue()
