"""Every step runs on its own from the command line: ``python -m etl.<step>``."""

import json
import shutil

import pytest

from etl.runner import location_arg
from tests.conftest import CANDIDATES, module_help, run_main, run_module

STEPS = ["load_data", "preprocess_data", "train_model", "nested_cv", "evaluate_model", "quality_gate", "report",
         "save_results", "upload_results", "runtime.summary", "predict"]


@pytest.mark.parametrize("step", STEPS)
def test_help(step):
    assert module_help(f"etl.{step}").startswith("usage: ")


TWO = CANDIDATES[:2]  # two of the enabled candidates: enough to select, quick to train


def test_steps_chain_with_their_default_paths(small_csv, env, tmp_path):
    """With no path arguments the steps share results/runs/cli/, like the DAG's run folder."""
    outputs = {}
    for step, args in [
        ("load_data", ["--data-path", str(small_csv)]),
        ("preprocess_data", ["--test-size", "0.25"]),
        ("train_model", ["--C", "0.5", "--candidate", TWO[0], "--candidate", TWO[1]]),
        ("evaluate_model", []),
        ("quality_gate", []),
        ("report", []),
        ("save_results", []),
        ("upload_results", []),
    ]:
        proc = run_module(f"etl.{step}", *args, env=env)
        assert proc.returncode == 0, f"{step}: {proc.stderr}"
        outputs.update(json.loads(proc.stdout))
    run = tmp_path / "results" / "runs" / "cli"
    assert outputs["data"] == str(run / "data.parquet")
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert metrics["n_test"] == 15
    assert (tmp_path / "uploads" / "cli" / "model.skops").read_bytes() == (run / "model.skops").read_bytes()
    assert (tmp_path / "uploads" / "cli" / "model.pkl").read_bytes() == (tmp_path / "results" / "model.pkl").read_bytes()
    assert sorted(p.name for p in (run / "candidates").iterdir()) == sorted(TWO)
    assert outputs["candidate"] in TWO and (run / "report.html").is_file()
    proc = run_module("etl.runtime.summary", env=env)
    assert proc.returncode == 0 and "accuracy" in proc.stdout


def test_bad_data_is_one_line_on_stderr_without_traceback(small_csv, env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(small_csv.read_text().replace(",M,", ",Q,", 1))
    proc = run_module("etl.load_data", "--data-path", str(bad), env=env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {bad}: line 2: diagnosis 'Q' (expected M or B)"]
    assert "Traceback" not in proc.stderr


def test_step_without_its_input_names_the_missing_file(env, tmp_path, monkeypatch, capsys):
    """In-process (the chain above runs the processes): one line naming the file and its task."""
    status, _, err = run_main("etl.train_model", env=env, monkeypatch=monkeypatch, capsys=capsys)
    assert status == 1
    assert err.splitlines() == [f"error: missing input {tmp_path / 'results' / 'runs' / 'cli' / 'data.parquet'} "
                                "(written by task 'load_data': run it first)"]
    status, _, err = run_main("etl.runtime.summary", env=env, monkeypatch=monkeypatch, capsys=capsys)
    assert status == 1 and "no published results yet" in err


def test_a_command_lines_paths_are_taken_from_the_current_directory(small_csv, env, tmp_path, monkeypatch, capsys):
    """``--data-path``, ``--run-dir`` and a settings flag's folder (``--destination``), given
    relative, are the current directory's, as on any command line (the trigger form's and the
    settings' relative paths are the project's)."""
    shutil.copy(small_csv, tmp_path / "mine.csv")
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main("etl.load_data", "--data-path", "mine.csv", "--run-dir", "run", env=env,
                                monkeypatch=monkeypatch, capsys=capsys)
    assert status == 0, err
    assert json.loads(out)["data"] == str(tmp_path / "run" / "data.parquet")
    assert json.loads((tmp_path / "run" / "profile.json").read_text())["source"] == str(tmp_path / "mine.csv")
    assert location_arg("uploads") == str(tmp_path / "uploads") and location_arg("s3://b/p") == "s3://b/p"
    assert "--destination VALUE" in module_help("etl.upload_results")
