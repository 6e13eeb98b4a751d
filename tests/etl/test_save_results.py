import os

import pytest

from etl.errors import MissingInputError, ParameterError
from etl.save_results import ensure_results_dir, publish


def _run_folder(tmp_path, tag="new"):
    run = tmp_path / "runs" / tag
    run.mkdir(parents=True)
    for name in ("metrics.json", "model.pkl", "scaler.pkl"):
        (run / name).write_text(f"{tag} {name}")
    return run


def test_ensure_results_dir_creates_and_checks(tmp_path):
    created = ensure_results_dir(tmp_path / "results", tmp_path / "results" / "runs" / "k")
    assert all(os.path.isdir(p) for p in created)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="is not a folder"):
        ensure_results_dir(tmp_path / "file")


def test_ensure_results_dir_refuses_a_folder_it_cannot_write(tmp_path):
    with pytest.raises(ParameterError, match="/sys/results is not writable"):
        ensure_results_dir("/sys/results")  # not writable even for root


def test_publish_copies_every_artifact(tmp_path):
    run = _run_folder(tmp_path)
    out = publish({n: run / n for n in ("metrics.json", "model.pkl", "scaler.pkl")}, tmp_path)
    assert {n: open(p).read() for n, p in out.items()} == {
        "metrics.json": "new metrics.json", "model.pkl": "new model.pkl", "scaler.pkl": "new scaler.pkl",
    }


def test_publish_is_all_or_nothing(tmp_path):
    old = _run_folder(tmp_path, "old")
    publish({n: old / n for n in ("metrics.json", "model.pkl", "scaler.pkl")}, tmp_path)
    new = _run_folder(tmp_path, "new")
    (new / "scaler.pkl").unlink()
    with pytest.raises(MissingInputError):
        publish({n: new / n for n in ("metrics.json", "model.pkl", "scaler.pkl")}, tmp_path)
    assert (tmp_path / "model.pkl").read_text() == "old model.pkl"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "metrics.json", "model.pkl", "scaler.pkl",
    ]


def test_publish_refuses_unknown_names(tmp_path):
    with pytest.raises(ParameterError, match="not a published artifact"):
        publish({"data.csv": tmp_path / "data.csv"}, tmp_path)
