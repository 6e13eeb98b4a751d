"""Confirmed outcomes on a simulated deployment built from the shipped data: a model trained on
400 rows is published, the other 169 rows are scored in three batches, and their true
diagnoses come back as outcome files. In-process (``etl.outcomes``, ``etl.monitoring.performance``,
``etl.monitoring.datasets``, the outcomes DAG's callables); the real scheduler is in
tests/e2e/test_ui_trigger.py."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from etl import outcomes, score, storage
from etl.catalog import DataValidationError
from etl.modeling.stats import calibration_table, clopper_pearson
from etl.monitoring import datasets
from etl.settings import load_settings
from etl.storage.inbox import claim, keep
from etl.storage.layout import InboxPaths, ResultsPaths
from tests.conftest import PROJECT_ROOT, build_run, decide_and_publish, gate_settings

EASY = gate_settings(min_roc_auc=0.5)


def _settings(**outcome_changes):
    settings = load_settings()
    return replace(settings, outcomes=replace(settings.outcomes, **outcome_changes))


def _score(results, inbox_root, frames: dict[str, pd.DataFrame]) -> list[str]:
    inbox = InboxPaths(inbox_root)
    inbox_root.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.drop(columns=["diagnosis"]).to_csv(inbox_root / name, index=False)
    claim(inbox)
    return [score.process(p, inbox, results, load_settings().scoring)["batch"] for p in sorted(inbox.queued.iterdir())]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, shipped_csv):
    """``results/`` with one published release (trained on the first 400 shipped rows) and three
    scored batches of the other 169; the truth of each batch beside it."""
    root = tmp_path_factory.mktemp("deployment")
    shipped = pd.read_csv(shipped_csv)
    train, rest = shipped.iloc[:400], shipped.iloc[400:]
    train.to_csv(root / "train.csv", index=False)
    results = root / "results"
    run = build_run(results / "runs" / "r1", root / "train.csv", candidates=("logistic_regression",))
    assert decide_and_publish(run.root, results, EASY)["release"]
    batches = {f"clinic-{i}.csv": rest.iloc[i * 57:(i + 1) * 57] for i in range(3)}  # 57, 57, 55 rows
    _score(results, root / "incoming", batches)
    return {"root": root, "results": results, "truth": rest[["id", "diagnosis"]].astype({"id": str}),
            "train_csv": root / "train.csv", "batches": batches}


@pytest.fixture
def site(tmp_path, deployment):
    """A copy of the deployment to change, and its outcomes inbox."""
    shutil.copytree(deployment["results"], tmp_path / "results", symlinks=True)
    shutil.copytree(deployment["root"] / "incoming", tmp_path / "incoming")  # the scoring inbox, as it is
    return SimpleNamespace(results=tmp_path / "results", inbox=InboxPaths(tmp_path / "outcomes"),
                           truth=deployment["truth"], root=tmp_path, deployment=deployment)


def _deliver(site, name: str, frame: pd.DataFrame) -> None:
    site.inbox.root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(site.inbox.root / name, index=False)
    claim(site.inbox)
    for path in sorted(site.inbox.queued.iterdir()):
        try:
            outcomes.process(path, site.inbox, site.results)
        except DataValidationError:
            pass


def _predictions(results) -> pd.DataFrame:
    return outcomes.read_predictions(results)


def _record(site, settings=None) -> dict:
    out = outcomes.update_monitoring(site.results, (settings or _settings()).outcomes)
    (release,) = out["releases"]
    return json.loads(storage.location(out["releases"][release]).read_text())


def test_the_realized_figures_equal_a_hand_count(site):
    _deliver(site, "pathology-december.csv", site.truth)
    rec = _record(site)
    joined = _predictions(site.results).merge(site.truth, on="id")
    outside = joined["malignant_probability"].isna()  # out of scope: no answer, counted apart
    assert rec["out_of_scope"] == outside.sum() and (joined.loc[outside, "call"] == "out of scope").all()
    joined = joined[~outside]
    y, flagged = joined["diagnosis"] == "M", joined["predicted"] == "M"
    tp, fn, tn, fp = (int(v) for v in ((y & flagged).sum(), (y & ~flagged).sum(), (~y & ~flagged).sum(),
                                       (~y & flagged).sum()))
    r = rec["realized"]
    assert (r["confirmed"], r["caught"], r["malignant"], r["cleared"], r["benign"]) == (
        169 - rec["out_of_scope"], tp, tp + fn, tn, tn + fp)
    assert r["sensitivity"] == tp / (tp + fn) and r["sensitivity_ci95"] == list(clopper_pearson(tp, tp + fn))
    assert r["ppv"] == tp / (tp + fp)
    p = joined["malignant_probability"].to_numpy()
    assert r["brier"] == pytest.approx(np.mean((p - y.to_numpy(int)) ** 2))
    assert r["calibration"] == calibration_table(y.to_numpy(int), p)
    assert sum(b["confirmed"] for b in rec["by_batch"].values()) == r["confirmed"] and len(rec["by_batch"]) == 3
    assert list(rec["by_month"]) == [pd.Timestamp.now("UTC").strftime("%Y-%m")]  # no date given: the day it came
    metrics = json.loads((site.results / "metrics.json").read_text())
    assert rec["target_sensitivity"] == metrics["operating_point"]["target_sensitivity"]
    assert rec["expected"]["sensitivity"] == metrics["expected_performance"]["pooled"]["sensitivity"] if \
        "expected_performance" in metrics else rec["expected"]["sensitivity"] is None
    assert rec["alarm"]["raised"] is False  # the true outcomes: the promise holds
    assert rec["alarm"]["checks"]["sensitivity"]["decided"] is (r["malignant"] >= 20)


def test_outcomes_that_break_the_promise_raise_the_alarm_once_on_a_webhook(site, monkeypatch, webhook_server):
    """A delivery in which the model missed a fifth of the tumours: realized sensitivity far
    below 97 % beyond noise. The alarm goes out once (not again on the next recomputation)."""
    from etl.orchestration import tasks

    joined = _predictions(site.results).merge(site.truth, on="id")
    caught = joined[(joined["diagnosis"] == "M") & (joined["predicted"] == "M")]
    cleared = joined[joined["predicted"] == "B"]
    misses = cleared.head(len(caught) // 4)  # caught / (caught + misses) = 4 / 5
    contradicted = site.truth.assign(diagnosis=np.where(site.truth["id"].isin(set(misses["id"])), "M",
                                                        site.truth["diagnosis"]))
    _deliver(site, "pathology-contradicting.csv", contradicted)
    config = site.root / "alerts.toml"
    config.write_text('[alerts]\nwebhook_conn_id = "outcome_alarms"\n')
    monkeypatch.setenv("PIPELINE_CONFIG", f"{PROJECT_ROOT / 'tests' / 'fast.toml'}:{config}")
    monkeypatch.setenv("RESULTS_DIR", str(site.results))
    monkeypatch.setenv("AIRFLOW_CONN_OUTCOME_ALARMS", webhook_server.connection())
    context = {"dag_run": SimpleNamespace(conf={}, dag_id="breast_cancer_outcomes", run_id="r", logical_date=None),
               "dag": SimpleNamespace(params={}), "run_id": "r",
               "ti": SimpleNamespace(task_id="update_monitoring", map_index=-1, try_number=1)}
    tasks.update_monitoring(**context)
    (text,) = [body["text"] for _, body in webhook_server.posts]
    assert "its promise is broken on confirmed outcomes" in text and "upper bound" in text, text
    rec = json.loads(next((site.results / "monitoring" / "releases").iterdir()).read_text())
    assert rec["alarm"]["raised"] and rec["realized"]["sensitivity"] < 0.85
    tasks.update_monitoring(**context)  # the same counts again: no second alert
    assert len(webhook_server.posts) == 1


def test_the_four_rules(site, caplog):
    truth = site.truth
    first, second = truth.iloc[:60], truth.iloc[40:100]  # 20 ids in both files, the same diagnosis
    _deliver(site, "a.csv", first)
    _deliver(site, "b.csv", second)
    # an id never scored: kept aside and reported
    _deliver(site, "c.csv", pd.DataFrame({"id": ["999999001"], "diagnosis": ["M"]}))
    # two different outcomes for one id: counted nowhere
    flipped = truth.iloc[[0]].assign(diagnosis=lambda d: np.where(d["diagnosis"] == "M", "B", "M"))
    _deliver(site, "d.csv", flipped)
    with caplog.at_level(logging.ERROR, logger="etl.outcomes"):
        rec = _record(site)
    summary = json.loads((site.results / "monitoring" / "summary.json").read_text())
    # 100 ids, the same 20 counted once, 1 in conflict; a case out of scope is counted apart
    assert rec["realized"]["confirmed"] + rec["out_of_scope"] == 99
    assert summary["unmatched"] == ["999999001"]
    (conflict,) = summary["conflicts"]
    assert conflict["id"] == truth.iloc[0]["id"] and conflict["files"] == ["a.csv", "d.csv"]
    (line,) = [r.getMessage() for r in caplog.records if "counted nowhere" in r.getMessage()]
    assert line.startswith(f"id {truth.iloc[0]['id']}: confirmed ") and "\n" not in line


def test_an_outcome_counts_for_the_release_that_scored_it(site, deployment, shipped_csv):
    """A new release is published; outcomes of batches the first one scored still count for it,
    and the next batch's for the new one."""
    shipped = pd.read_csv(shipped_csv)
    run = build_run(site.results / "runs" / "r2", deployment["train_csv"], C=0.5, candidates=("logistic_regression",))
    new = storage.location(decide_and_publish(run.root, site.results, EASY)["release"]).name
    first = json.loads(next(p for p in (site.results / "published").iterdir() if p.name != new)
                       .joinpath("manifest.json").read_text())
    extra = shipped.iloc[:30].assign(id=lambda d: d["id"] + 100_000)  # new patients, scored now
    _score(site.results, site.root / "incoming", {"late.csv": extra})
    _deliver(site, "all.csv", pd.concat([site.truth, extra[["id", "diagnosis"]]]))
    out = outcomes.update_monitoring(site.results, _settings().outcomes)
    records = {name: json.loads(storage.location(p).read_text()) for name, p in out["releases"].items()}
    assert set(records) == {first["release"], new} and first["release"] != new
    assert sum(records[first["release"]][k] if k == "out_of_scope" else records[first["release"]]["realized"][k]
               for k in ("confirmed", "out_of_scope")) == 169
    assert records[new]["realized"]["confirmed"] + records[new]["out_of_scope"] == 30


def test_a_killed_run_then_a_rerun_counts_each_outcome_once(site, monkeypatch):
    site.inbox.root.mkdir(parents=True)
    site.truth.to_csv(site.inbox.root / "pathology.csv", index=False)
    (queued,) = claim(site.inbox)
    import etl.storage.inbox

    def killed(*args):
        raise KeyboardInterrupt  # the process dies after the ledger write, before the file moves on

    with monkeypatch.context() as m:
        m.setattr(etl.storage.inbox, "keep", killed)
        with pytest.raises(KeyboardInterrupt):
            outcomes.process(queued, site.inbox, site.results)
    assert queued.exists() and len(list((site.results / "monitoring" / "outcomes").iterdir())) == 1
    again = outcomes.process(queued, site.inbox, site.results)  # the rerun
    assert again["new"] is False
    first = _record(site)
    assert first["realized"]["confirmed"] + first["out_of_scope"] == 169
    assert _record(site) == first  # and recomputing changes nothing
    assert [p.name for p in site.inbox.processed.iterdir()] == ["pathology.csv"]


@pytest.mark.parametrize("content, message", [
    ("patient,diagnosis\n1,M\n", "no id column"),
    ("id,diagnosis\n842302,X\n", "line 2: diagnosis 'X' of id 842302 is not M or B"),
    ("id,diagnosis,date\n842302,M,1/12/2026\n", "line 2: date '1/12/2026' of id 842302 is not YYYY-MM-DD"),
    ("id,diagnosis\n", "no outcomes"),
])
def test_a_bad_outcome_file_is_refused_in_one_line(site, content, message):
    site.inbox.root.mkdir(parents=True)
    (site.inbox.root / "bad.csv").write_text(content)
    (path,) = claim(site.inbox)
    with pytest.raises(DataValidationError, match=message):
        outcomes.process(path, site.inbox, site.results)
    reason = (site.inbox.rejected / "bad.csv.reason.txt").read_text()
    assert reason.count("\n") == 1 and message in reason


def test_no_submitted_file_is_overwritten_and_a_resent_one_is_recognised(site, deployment):
    """Both inboxes: a second file under a name already processed is kept beside the first; the
    same bytes again are recognised (and a scoring file is not scored twice)."""
    inbox = InboxPaths(site.root / "incoming")
    scored_before = sorted(p.name for p in (site.results / "scoring").iterdir())
    frame = deployment["batches"]["clinic-0.csv"]
    batches = _score(site.results, site.root / "incoming", {"clinic-0.csv": frame})  # the same bytes
    assert batches == [scored_before[0]] and sorted(p.name for p in (site.results / "scoring").iterdir()) == scored_before
    other = frame.head(5)
    _score(site.results, site.root / "incoming", {"clinic-0.csv": other})  # the same name, other rows
    assert sorted(p.name for p in inbox.processed.iterdir()) == ["clinic-0.2.csv", "clinic-0.csv", "clinic-1.csv",
                                                                  "clinic-2.csv"]
    assert len(list((site.results / "scoring").iterdir())) == 4
    assert (inbox.processed / "clinic-0.csv").read_bytes() != (inbox.processed / "clinic-0.2.csv").read_bytes()
    # keep(): one file per content, names never reused
    (site.root / "x").mkdir()
    for i, body in enumerate([b"a", b"b", b"a", b"c"]):
        (site.root / "x" / "f.csv").write_bytes(body)
        kept, same = keep(site.root / "x" / "f.csv", site.root / "kept")
        assert (kept.name, same) == [("f.csv", False), ("f.2.csv", False), ("f.csv", True), ("f.3.csv", False)][i]
    assert {p.name: p.read_bytes() for p in (site.root / "kept").iterdir()} == {
        "f.csv": b"a", "f.2.csv": b"b", "f.3.csv": b"c"}


def test_confirmed_cases_grow_a_versioned_training_set_that_trains(site, deployment):
    _deliver(site, "pathology.csv", site.truth.iloc[:100])
    matched = outcomes.confirmed(site.results)
    assert datasets.grow(matched, site.results, deployment["train_csv"], min_cases=101) is None
    record = datasets.grow(matched, site.results, deployment["train_csv"], min_cases=100)
    assert (record["version"], record["added"], record["rows"]) == ("v0001", 100, 500)
    folder = site.results / "datasets" / "v0001"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sha256"] == storage.sha256(folder / "data.csv") and manifest["parent"] is None
    assert manifest["outcome_files"] == ["pathology.csv"] and len(manifest["batches"]) >= 1
    grown = pd.read_csv(folder / "data.csv", dtype={"id": str})
    shipped = pd.read_csv(deployment["root"] / "train.csv", dtype={"id": str})
    new = grown[~grown["id"].isin(set(shipped["id"]))].merge(site.truth, on="id", suffixes=("", "_true"))
    assert len(new) == 100 and (new["diagnosis"] == new["diagnosis_true"]).all()  # the confirmed diagnoses
    # the scored features, as scored
    scored = pd.concat(deployment["batches"].values()).astype({"id": str}).set_index("id")
    assert np.allclose(new.set_index("id")["radius_mean"], scored.loc[new["id"], "radius_mean"])
    before = (folder / "data.csv").read_bytes()
    assert datasets.grow(outcomes.confirmed(site.results), site.results, deployment["train_csv"], 1) is None
    _deliver(site, "more.csv", site.truth.iloc[100:])
    second = datasets.grow(outcomes.confirmed(site.results), site.results, deployment["train_csv"], 50)
    assert (second["version"], second["added"], second["rows"]) == ("v0002", 69, 569)
    assert (folder / "data.csv").read_bytes() == before  # never rewritten
    # the training DAG's steps on the new version: loads, splits by the id hash, trains
    run = build_run(site.root / "runs" / "grown", second["data_path"], candidates=("logistic_regression",))
    assert json.loads(run.profile.read_text())["rows"] == 569


def test_the_outcomes_cli(site, capsys):
    path = site.root / "one.csv"
    site.truth.iloc[:10].to_csv(path, index=False)
    import os

    os.environ["RESULTS_DIR"], old = str(site.results), os.environ.get("RESULTS_DIR")
    try:
        assert outcomes.main(["--input", str(path)]) == 0
    finally:
        if old is None:
            del os.environ["RESULTS_DIR"]
        else:
            os.environ["RESULTS_DIR"] = old
    out = json.loads(capsys.readouterr().out)
    assert len(out["recorded"]) == 1 and out["unmatched"] == 0 and path.exists()  # left where it is
    assert ResultsPaths(site.results).monitoring.summary.exists()


def test_a_version_written_whole_before_a_kill_is_made_current_not_rewritten(site, deployment, monkeypatch):
    _deliver(site, "pathology.csv", site.truth.iloc[:100])
    matched = outcomes.confirmed(site.results)
    real = storage.write_json

    def killed_at_current(data, target):
        if storage.location(target).name == "current.json":
            raise KeyboardInterrupt  # the version is complete; the pointer did not move
        return real(data, target)

    with monkeypatch.context() as m:
        m.setattr(storage, "write_json", killed_at_current)
        with pytest.raises(KeyboardInterrupt):
            datasets.grow(matched, site.results, deployment["train_csv"], min_cases=100)
    before = (site.results / "datasets" / "v0001" / "data.csv").read_bytes()
    record = datasets.grow(matched, site.results, deployment["train_csv"], min_cases=100)  # the rerun
    assert record["version"] == "v0001" and datasets.current(site.results)["version"] == "v0001"
    assert (site.results / "datasets" / "v0001" / "data.csv").read_bytes() == before


def test_the_grown_data_on_an_s3_results_root(s3_server, monkeypatch, site, deployment):
    """A cluster's results root (moto on 127.0.0.1): the batches' rows and the versions are
    objects; the version's data_path reads back through the same storage layer load_data uses."""
    import uuid

    from etl.data.contract import read_input, validate
    from tests.servers import BUCKET

    monkeypatch.setenv("AIRFLOW_CONN_GROWN_S3", s3_server.connection())
    root = storage.location(f"s3://grown_s3@{BUCKET}/r-{uuid.uuid4().hex[:8]}")
    _deliver(site, "pathology.csv", site.truth.iloc[:60])
    matched = outcomes.confirmed(site.results)
    for batch in sorted(set(matched["batch"])):  # the scored rows, as the scoring DAG leaves them on S3
        storage.write_frame(storage.read_frame(ResultsPaths(site.results).batch(batch).rows),
                            ResultsPaths(root).batch(batch).rows)
    record = datasets.grow(matched, root, deployment["train_csv"], min_cases=60)
    assert record["version"] == "v0001" and record["data_path"].startswith("s3://")
    rows, _ = validate(read_input(record["data_path"]), record["data_path"])  # as load_data reads it
    assert len(rows) == 400 + 60 and record["rows"] == 460
    assert datasets.current(root)["data_path"] == record["data_path"]
    manifest = storage.read_json(ResultsPaths(root).datasets / "v0001" / "manifest.json")
    assert manifest["sha256"] == storage.sha256(storage.location(record["data_path"])) and manifest["added"] == 60


def test_the_figures_per_call_equal_a_hand_count_and_the_second_promise_is_watched(site):
    _deliver(site, "pathology.csv", site.truth)
    rec = _record(site)
    joined = _predictions(site.results).merge(site.truth, on="id")
    joined = joined[joined["call"] != "out of scope"]
    calls, y = rec["calls"], joined["diagnosis"] == "M"
    for c in ("benign", "refer", "malignant"):
        inside = joined["call"] == c
        assert calls[c] == {"cases": int(inside.sum()), "malignant": int((inside & y).sum()),
                            "benign": int((inside & ~y).sum())}
    assert calls["referred"] == (joined["call"] == "refer").mean()
    assert calls["benign_called_malignant"] == ((joined["call"] == "malignant") & ~y).sum() / (~y).sum()
    assert calls["malignant_called_benign"] == ((joined["call"] == "benign") & y).sum() / y.sum()
    check = rec["alarm"]["checks"]["malignant_calls"]
    assert check["limit"] == pytest.approx(0.01) and check["benign"] == (~y).sum() and not check["broken"]


def test_the_alarm_watches_the_malignant_calls():
    from etl.monitoring.performance import alarm, call_figures, counts

    y = np.r_[np.zeros(100, int), np.ones(20, int)]
    calls = np.r_[["malignant"] * 8, ["benign"] * 92, ["malignant"] * 20].astype(object)  # 8 % of benign called malignant
    p = np.where(calls == "malignant", 0.9, 0.1)
    figures = counts(y, p, (calls == "malignant").astype(int))
    raised = alarm(figures, y, p, 0.97, 0.99, 20, 30, call_figures(y, calls), 0.99)
    assert raised["checks"]["malignant_calls"]["broken"] and any("benign called malignant 8 of 100" in r
                                                                 for r in raised["reasons"])
    quiet = alarm(figures, y, p, 0.97, 0.99, 20, 30, call_figures(y, calls), None)  # no second promise recorded
    assert "malignant_calls" not in quiet["checks"]
