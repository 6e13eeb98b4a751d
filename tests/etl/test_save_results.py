import hashlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import joblib
import pytest
from cryptography.hazmat.primitives import serialization

from etl.catalog import IntegrityError, MissingInputError, ParameterError
from etl.releases.reader import current_release, open_release, release_is_intact, run_release, verified_files
from etl.releases.registry import ensure_results_dir, publish
from etl.releases.retention import prune
from etl.storage.layout import MODEL_FILES, RELEASE_FILES, TOP_FILES
from tests.conftest import PROJECT_ROOT, decide_and_publish, inputs_of


@pytest.fixture
def results(tmp_path, evaluated_runs) -> Path:
    """A results folder with copies of the ``old`` and ``new`` evaluated runs."""
    for key, run in evaluated_runs.items():
        shutil.copytree(run, tmp_path / "results" / "runs" / key)
    return tmp_path / "results"


def published_bytes(results: Path) -> dict[str, bytes]:
    """What a user sees at the top of results/ (through the links)."""
    return {name: (results / name).read_bytes() for name in TOP_FILES}


def assert_consistent(results: Path) -> str:
    """The top-level files are exactly one intact release; return its name."""
    release = current_release(results)
    assert release_is_intact(release)
    assert published_bytes(results) == {n: (release / n).read_bytes() for n in TOP_FILES}
    return release.name


def test_ensure_results_dir_creates_and_checks(tmp_path):
    created = ensure_results_dir(tmp_path / "results", tmp_path / "results" / "runs" / "k")
    assert all(os.path.isdir(p) for p in created)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="is not a folder"):
        ensure_results_dir(tmp_path / "file")


def test_ensure_results_dir_refuses_a_folder_it_cannot_write(tmp_path):
    with pytest.raises(ParameterError, match="/sys/results is not writable"):
        ensure_results_dir("/sys/results")  # not writable even for root


def test_publish_lays_out_links_pointer_and_release(results, small_csv):
    run = results / "runs" / "new"
    out = decide_and_publish(run, results, run_info={"dag_id": "d", "run_id": "manual__x", "logical_date": None})
    release = Path(out["release"])
    assert re.fullmatch(r"new-[0-9a-f]{12}", release.name)
    assert os.readlink(results / "current") == f"published/{release.name}"
    assert sorted(p.name for p in release.iterdir()) == sorted(RELEASE_FILES)
    for name in TOP_FILES:
        assert os.readlink(results / name) == f"current/{name}"
        assert out[name] == str(results / name)
    for name in ("metrics.json", *MODEL_FILES):  # the run's files, as they are
        assert (release / name).read_bytes() == (run / name).read_bytes()
    # the pickles for users: what the skops files hold (the test loads them as a user does)
    model = joblib.load(results / "model.pkl")
    assert type(model) is type(open_release(results_dir=results).model)
    assert model.get_params() == open_release(results_dir=results).model.get_params()
    assert joblib.load(results / "scaler.pkl").n_features_in_ == 30
    assert run_release(run, results) == release == current_release(results)
    assert json.loads((run / "release.json").read_text()) == {"published": True, "release": release.name}


def test_manifest_records_hashes_data_params_versions_code_and_run(results, small_csv):
    publish(inputs_of(results / "runs" / "new"), results, {"dag_id": "d", "run_id": "manual__x"})
    manifest = json.loads((results / "manifest.json").read_text())
    for name in ("metrics.json", "model.pkl", "scaler.pkl", *MODEL_FILES):
        data = (results / "current" / name).read_bytes()
        assert manifest["artifacts"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    key = serialization.load_pem_public_key(Path(os.environ["RELEASE_TRUSTED_KEYS"]).read_bytes())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert manifest["signing"]["key"] == hashlib.sha256(der).hexdigest()
    assert manifest["signing"]["signature"] == "release.sig"
    assert manifest["data"]["sha256"] == hashlib.sha256(small_csv.read_bytes()).hexdigest()
    assert manifest["data"]["source"] == str(small_csv)
    assert (manifest["data"]["rows"], manifest["data"]["class_balance"]) == (60, {"B": 39, "M": 21})
    assert manifest["params"] == {
        "load_data": {"data_path": str(small_csv), "max_missing_share": 0.05, "min_rows_per_class": 5},
        "preprocess_data": {"test_size": 0.25, "random_state": 0,
                            "split": {"method": "hash", "salt": "wdbc-test-split-1"}},
        "train_model": {"estimator": "LogisticRegression", "C": 1.0, "max_iter": 1000, "random_state": 0},
        "select_model": {"candidate": "logistic_regression", "metric": "referral", "folds": 3, "repeats": 1,
                         "rule": "one standard error of the paired fold differences, simplest first",
                         "threshold_rule": "risk_control",
                         "guarantee": "Expected sensitivity on new patients of at least 97% (conformal risk "
                                      "control on the out-of-fold malignant cases).",
                         "target_sensitivity": 0.97, "threshold_confidence": None},
    }
    training = json.loads((results / "runs" / "new" / "training.json").read_text())
    assert manifest["model"] == {"candidate": "logistic_regression", "estimator": "LogisticRegression",
                                 "threshold": training["threshold"]["threshold"],
                                 "malignant_threshold": training["triage"]["threshold"]}
    assert set(manifest["versions"]) == {"python", "apache-airflow", "pandas", "numpy", "scikit-learn", "joblib", "skops"}
    assert all(manifest["versions"].values())
    head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],  # packed refs too
                          capture_output=True, text=True, check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", head) and manifest["code"]["revision"] == head
    assert manifest["run"]["run_id"] == "manual__x" and manifest["run"]["run_key"] == "new"
    assert manifest["run"]["published_at"].endswith("+00:00")


def test_publishing_the_same_run_again_changes_nothing(results):
    first = publish(inputs_of(results / "runs" / "new"), results)
    before = published_bytes(results)
    second = publish(inputs_of(results / "runs" / "new"), results)
    assert first == second
    assert published_bytes(results) == before  # the manifest, times included, is not rewritten
    assert len(list((results / "published").iterdir())) == 1


def test_a_new_run_replaces_every_published_file(results):
    publish(inputs_of(results / "runs" / "old"), results)
    old = assert_consistent(results)
    publish(inputs_of(results / "runs" / "new"), results)
    new = assert_consistent(results)
    assert old != new and old.startswith("old-") and new.startswith("new-")
    assert (results / "published" / old).is_dir()  # kept for rollback until pruned


def test_an_incomplete_or_changed_run_is_not_published(results):
    publish(inputs_of(results / "runs" / "old"), results)
    before = published_bytes(results)
    (results / "runs" / "new" / "scaler.skops").unlink()
    with pytest.raises(MissingInputError, match="written by task 'preprocess_data'"):
        publish(inputs_of(results / "runs" / "new"), results)
    shutil.copy(results / "runs" / "old" / "scaler.skops", results / "runs" / "new" / "scaler.skops")
    shutil.copy(results / "runs" / "old" / "model.skops", results / "runs" / "new" / "model.skops")
    with pytest.raises(IntegrityError,
                       match=r"model.skops: SHA-256 .* does not match .* recorded in .*model.skops.sha256"):
        publish(inputs_of(results / "runs" / "new"), results)
    assert published_bytes(results) == before


def _counting(monkeypatch, fail_at: int | None) -> list[tuple]:
    """Record the file-system operations that change what is visible; fail the ``fail_at``-th."""
    calls: list[tuple] = []
    for name in ("rename", "replace", "symlink"):
        real = getattr(os, name)

        def op(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, *map(str, args)))
            if len(calls) == fail_at:
                raise OSError(28, f"injected failure of os.{_name} (call {fail_at})")
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, op)
    return calls


@pytest.mark.parametrize("first", [True, False], ids=["first-publish", "replacing-a-release"])
def test_a_failure_at_any_point_of_publishing_leaves_the_old_state(results, monkeypatch, first):
    """Crash consistency: fail each rename, replace and link of a publish in turn."""
    old = None if first else publish(inputs_of(results / "runs" / "old"), results)["release"]
    before = None if first else published_bytes(results)
    snapshot = results.parent / "snapshot"
    shutil.copytree(results, snapshot, symlinks=True)

    with monkeypatch.context() as m:  # record the operations of a full publish
        calls = _counting(m, None)
        publish(inputs_of(results / "runs" / "new"), results)
    # 8 files (artifacts, skops files, model card, manifest, signature), release folder, pointer (link +
    # rename); 5 links at first (the run's release.json is save_results' record, written after publishing)
    assert len(calls) == (21 if first else 11), calls
    # The commit point: `current` replaced by the new link. Before it, the old state shows.
    commit = 1 + calls.index(next(c for c in calls if c[0] == "replace" and c[2] == str(results / "current")))

    for k in range(1, len(calls) + 1):
        shutil.rmtree(results)
        shutil.copytree(snapshot, results, symlinks=True)
        with monkeypatch.context() as m:
            _counting(m, k)
            with pytest.raises(OSError, match="injected failure"):
                publish(inputs_of(results / "runs" / "new"), results)
        where = f"failure at operation {k}: {calls[k - 1]}"
        if k > commit:  # past the commit point: the new release shows
            assert assert_consistent(results).startswith("new-"), where
        elif first:
            assert not any((results / n).exists() for n in TOP_FILES), where
            with pytest.raises(MissingInputError):
                current_release(results)
        else:
            assert assert_consistent(results) == Path(old).name, where
            assert published_bytes(results) == before, where
        publish(inputs_of(results / "runs" / "new"), results)  # the rerun succeeds
        assert assert_consistent(results).startswith("new-")


def _publish_repeatedly(results: str, run: str, times: int) -> None:
    for _ in range(times):
        publish(inputs_of(run), results)


def test_readers_never_see_a_partial_release_while_two_runs_publish(results):
    publish(inputs_of(results / "runs" / "old"), results)
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_publish_repeatedly, args=(str(results), str(results / "runs" / k), 8))
               for k in ("old", "new")]
    for w in writers:
        w.start()
    while any(w.is_alive() for w in writers):
        release = current_release(results)  # resolve once, then read: a consistent view
        assert set(verified_files(release)) == set(RELEASE_FILES)
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert_consistent(results)
    assert len(list((results / "published").iterdir())) == 2, sorted(p.name for p in (results / "published").iterdir())


def test_open_release_checks_the_signature(results):
    publish(inputs_of(results / "runs" / "new"), results)
    assert list(open_release(results_dir=results).model.classes_) == [0, 1]
    release = current_release(results)
    (release / "model.pkl").write_bytes((release / "model.pkl").read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=rf"release {release.name}: its files differ from what was signed "
                                             r"\(model.pkl changed\); refusing to use it"):
        open_release(results_dir=results)


def test_nothing_published_yet(tmp_path):
    with pytest.raises(MissingInputError, match="written by task 'save_results'"):
        current_release(tmp_path)


def _age(folder: Path, hours: float, now: float) -> None:
    for p in [folder, *folder.iterdir()]:
        os.utime(p, (now - hours * 3600, now - hours * 3600), follow_symlinks=False)


def test_prune_keeps_the_newest_the_published_and_anything_recent(results):
    now = time.time()
    runs, releases = results / "runs", results / "published"
    for i in range(6):
        shutil.copytree(runs / "new", runs / f"r{i}")
    for run in sorted(runs.iterdir()):  # new, old, r0 .. r5
        publish(inputs_of(run), results)
    publish(inputs_of(runs / "r2"), results)  # r2 is the published release
    ages = {"r0": 50, "r1": 40, "r2": 30, "r3": 20, "r4": 10, "r5": 0.5, "old": 60, "new": 70}
    for key, hours in ages.items():
        _age(runs / key, hours, now)
        _age(next(releases.glob(f"{key}-*")), hours, now)
    (releases / ".staging-r9-x").mkdir()  # an interrupted publish
    _age(releases / ".staging-r9-x", 30, now)

    r0_release = next(releases.glob("r0-*")).name
    deleted = prune(results, keep=2, min_age=timedelta(hours=6), protect=["r0", r0_release], now=now)

    # Kept: the 2 newest (r5, r4), the published (r2), protected (r0); the rest goes.
    assert sorted(p.name for p in runs.iterdir()) == ["r0", "r2", "r4", "r5"]
    assert sorted(p.name.split("-")[0] for p in releases.iterdir()) == ["r0", "r2", "r4", "r5"]
    assert len(deleted) == 9
    assert_consistent(results)

    # With keep=1, r4 (10 h) goes but r5, written 30 minutes ago, may be a run in progress.
    prune(results, keep=1, min_age=timedelta(hours=6), now=now)
    assert sorted(p.name for p in runs.iterdir()) == ["r2", "r5"]
    with pytest.raises(ParameterError, match="keep_runs must be >= 1"):
        prune(results, keep=0, min_age=timedelta(0))
