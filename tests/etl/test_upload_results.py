import shutil
from pathlib import Path

import pytest

from etl.errors import IntegrityError, ParameterError
from etl.save_results import publish
from etl.upload_results import local_destination, upload_results


def test_destination_forms(tmp_path):
    assert local_destination(str(tmp_path)) == tmp_path
    assert local_destination(tmp_path.as_uri()) == tmp_path
    with pytest.raises(ParameterError, match="unsupported scheme 'ftp'"):
        local_destination("ftp://host/x")


def test_upload_sends_the_release_under_the_run_key_and_replaces_on_rerun(tmp_path, evaluated_runs):
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    release = Path(publish(results / "runs" / "new", results)["release"])
    dest = tmp_path / "remote"
    out = upload_results(release, dest.as_uri(), "2024-01-01T000000Z")
    target = dest / "2024-01-01T000000Z"
    assert set(out) == {"metrics.json", "model.pkl", "scaler.pkl", "manifest.json"}
    for name, path in out.items():
        assert Path(path) == target / name and (target / name).read_bytes() == (release / name).read_bytes()
    upload_results(release, str(dest), "2024-01-01T000000Z")
    assert sorted(p.name for p in dest.rglob("*")) == sorted(["2024-01-01T000000Z", *out])


def test_upload_refuses_a_release_file_that_does_not_match_its_manifest(tmp_path, evaluated_runs):
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    release = Path(publish(results / "runs" / "new", results)["release"])
    (release / "scaler.pkl").write_bytes(b"not the scaler")
    with pytest.raises(IntegrityError, match=r"scaler.pkl: SHA-256 .* recorded in .*manifest.json"):
        upload_results(release, str(tmp_path / "remote"), "k")
    assert not (tmp_path / "remote").exists()  # checked before anything is sent
