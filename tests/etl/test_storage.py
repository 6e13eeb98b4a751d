import pytest

from etl import storage
from etl.errors import MissingInputError


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
    storage.dump_object({"k": [1, 2]}, tmp_path / "o.pkl")
    assert storage.load_object(tmp_path / "o.pkl") == {"k": [1, 2]}
    storage.copy_file(tmp_path / "o.pkl", tmp_path / "copy" / "o.pkl")
    assert (tmp_path / "copy" / "o.pkl").read_bytes() == (tmp_path / "o.pkl").read_bytes()
