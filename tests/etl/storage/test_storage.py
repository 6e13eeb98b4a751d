import hashlib
from pathlib import Path

import pytest

from etl import storage
from etl.catalog import IntegrityError, MissingInputError


def test_write_json_is_sorted_and_stable(tmp_path):
    path = tmp_path / "sub" / "m.json"
    storage.write_json({"b": 1, "a": 2}, path)
    first = path.read_bytes()
    storage.write_json({"a": 2, "b": 1}, path)
    assert path.read_bytes() == first == b'{\n  "a": 2,\n  "b": 1\n}\n'
    assert storage.read_json(path) == {"a": 2, "b": 1}


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with storage.atomic_open(path) as fh:
            fh.write("half")
            raise RuntimeError("disk gone")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_missing_file_names_its_producer(tmp_path):
    with pytest.raises(MissingInputError, match="written by task 'train_model'"):
        storage.require(tmp_path / "model.pkl", "train_model")
    with pytest.raises(MissingInputError, match="missing input"):
        storage.read_frame(tmp_path / "nope.csv")


def test_objects_round_trip(tmp_path):
    storage.dump_object({"k": [1, 2]}, tmp_path / "o.skops")
    assert storage.load_object(tmp_path / "o.skops") == {"k": [1, 2]}
    storage.copy_file(tmp_path / "o.skops", tmp_path / "copy" / "o.skops")
    assert (tmp_path / "copy" / "o.skops").read_bytes() == (tmp_path / "o.skops").read_bytes()


def test_a_changed_file_is_refused_before_it_is_loaded(tmp_path):
    model = tmp_path / "model.skops"
    storage.dump_object({"weights": [1.0, 2.0]}, model)
    assert (tmp_path / "model.skops.sha256").read_text() == (
        f"{hashlib.sha256(model.read_bytes()).hexdigest()}  model.skops\n"  # `sha256sum -c` reads it
    )
    storage.dump_object({"weights": [3.0]}, tmp_path / "other.skops")
    model.write_bytes((tmp_path / "other.skops").read_bytes())  # someone replaces the model file
    with pytest.raises(IntegrityError,
                       match=r"model.skops: SHA-256 .* does not match .* recorded in .*model.skops.sha256"):
        storage.load_object(model)


def test_a_file_without_a_checksum_is_refused(tmp_path):
    storage.dump_object({"k": 1}, tmp_path / "o.skops")
    (tmp_path / "o.skops.sha256").unlink()
    with pytest.raises(IntegrityError, match="no checksum recorded"):
        storage.load_object(tmp_path / "o.skops")


def test_copy_object_copies_the_bytes_and_the_checksum_and_refuses_a_changed_file(tmp_path):
    storage.dump_object({"weights": [1.0, 2.0]}, tmp_path / "a.skops")
    copied = storage.copy_object(tmp_path / "a.skops", tmp_path / "b" / "b.skops")
    assert copied.read_bytes() == (tmp_path / "a.skops").read_bytes()
    assert storage.recorded_sha256(copied) == storage.sha256(copied)
    assert storage.load_object(copied) == {"weights": [1.0, 2.0]}
    (tmp_path / "a.skops").write_bytes((tmp_path / "a.skops").read_bytes() + b"\0")
    with pytest.raises(IntegrityError):
        storage.copy_object(tmp_path / "a.skops", tmp_path / "c.skops")
    assert not (tmp_path / "c.skops").exists()


def test_interrupted_writes_are_cleared(tmp_path):
    (tmp_path / ".model.pkl.abc.tmp").write_bytes(b"half")
    (tmp_path / "model.pkl").write_bytes(b"whole")
    assert storage.remove_interrupted_writes(tmp_path) == [str(tmp_path / ".model.pkl.abc.tmp")]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pkl"]


def test_locations():
    assert storage.location("/a/b") == Path("/a/b")
    assert storage.location("file:///a/b%20c") == Path("/a/b c")
    assert storage.is_local("relative/x.csv")
    remote = storage.location("s3://bucket/results/model.pkl")
    assert type(remote).__name__ == "ObjectStoragePath" and not storage.is_local(remote)
    assert str(storage.checksum_file(remote)) == "s3://bucket/results/model.pkl.sha256"


def test_the_steps_storage_calls_work_on_airflow_object_storage_paths(tmp_path, small_csv):
    """The results root can be an ``ObjectStoragePath`` (here the file:// scheme, the one this
    machine serves; s3:// is the same code with the Amazon provider)."""
    from airflow.sdk import ObjectStoragePath

    from tests.conftest import build_run

    root = ObjectStoragePath(tmp_path.as_uri()) / "results" / "runs" / "k"
    root.mkdir(parents=True, exist_ok=True)
    run = build_run(root, ObjectStoragePath(small_csv.as_uri()))
    local = build_run(tmp_path / "local", small_csv)
    remote, here = (storage.read_json(r / "profile.json") for r in (tmp_path / "results/runs/k", local.root))
    assert remote.pop("source") == small_csv.as_uri() and here.pop("source") == str(small_csv)
    assert remote == here
    for name in ("data.parquet", "train.parquet", "test.parquet", "scaler.skops", "scaler.skops.sha256",
                 "model.skops", "training.json", "metrics.json", "predictions.csv"):
        assert (tmp_path / "results" / "runs" / "k" / name).read_bytes() == (local.root / name).read_bytes(), name
    assert storage.load_object(run.model).n_features_in_ == 30
    storage.copy_file(run.metrics, tmp_path / "copy.json")
    assert storage.read_json(tmp_path / "copy.json") == storage.read_json(run.metrics)


def test_interrupted_writes_of_named_files_only(tmp_path):
    for name in (".model.pkl.abc.tmp", ".model.pkl.def.tmp", ".cv.json.ghi.tmp", ".oof[1].parquet.j.tmp"):
        (tmp_path / name).write_bytes(b"half")
    assert storage.remove_interrupted_writes(tmp_path, ["model.pkl", "oof[1].parquet"]) == [
        str(tmp_path / n) for n in (".model.pkl.abc.tmp", ".model.pkl.def.tmp", ".oof[1].parquet.j.tmp")]
    assert [p.name for p in tmp_path.iterdir()] == [".cv.json.ghi.tmp"]
    assert storage.remove_interrupted_writes(tmp_path / "absent", ["model.pkl"]) == []
