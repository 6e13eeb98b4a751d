from pathlib import Path

import pytest

from etl.errors import ParameterError
from etl.upload_results import local_destination, upload_results


def test_destination_forms(tmp_path):
    assert local_destination(str(tmp_path)) == tmp_path
    assert local_destination(tmp_path.as_uri()) == tmp_path
    with pytest.raises(ParameterError, match="unsupported scheme 'ftp'"):
        local_destination("ftp://host/x")


def test_upload_copies_under_the_run_key_and_replaces_on_rerun(tmp_path):
    src = tmp_path / "published"
    src.mkdir()
    (src / "model.pkl").write_bytes(b"v1")
    dest = tmp_path / "remote"
    out = upload_results({"model.pkl": src / "model.pkl"}, dest.as_uri(), "2024-01-01T000000Z")
    assert Path(out["model.pkl"]) == dest / "2024-01-01T000000Z" / "model.pkl"
    (src / "model.pkl").write_bytes(b"v2")
    upload_results({"model.pkl": src / "model.pkl"}, str(dest), "2024-01-01T000000Z")
    assert [p.read_bytes() for p in dest.rglob("*") if p.is_file()] == [b"v2"]
    assert (src / "model.pkl").read_bytes() == b"v2"
