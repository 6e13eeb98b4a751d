import html as html_module
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from etl.catalog import IntegrityError
from etl.predict import predict
from etl.releases.reader import current_release
from etl.releases.registry import publish
from etl.report import SECTIONS
from tests.conftest import build_run, inputs_of, run_main


@pytest.fixture
def results(tmp_path, evaluated_runs) -> Path:
    shutil.copytree(evaluated_runs["new"], tmp_path / "results" / "runs" / "new")
    publish(inputs_of(tmp_path / "results" / "runs" / "new"), tmp_path / "results")
    return tmp_path / "results"


def test_predict_reproduces_the_evaluated_test_predictions(results, small_csv, tmp_path):
    out = predict(small_csv, tmp_path / "scored.csv", results)
    scored = pd.read_csv(out["predictions"])
    raw = pd.read_csv(small_csv)
    assert len(scored) == len(raw) == out["rows"] and list(scored["id"]) == list(raw["id"])
    assert list(scored.columns) == ["id", "malignant_probability", "predicted", "release", "call", "out_of_scope",
                                     "reason_1", "reason_2", "reason_3"]
    assert set(scored["release"]) == {out["release"]}
    # the three-way call: benign below the sensitivity threshold (where predicted is B), malignant
    # at or above the second threshold, referred between
    manifest = json.loads((results / "manifest.json").read_text())["model"]
    low, high = manifest["threshold"], manifest["malignant_threshold"]
    assert low <= high
    p = scored["malignant_probability"]
    assert ((scored["call"] == "benign") == (scored["predicted"] == "B")).all()
    assert ((scored["call"] == "malignant") == (p >= high)).all()
    assert ((scored["call"] == "refer") == ((p >= low) & (p < high))).all()
    evaluated = pd.read_csv(results / "runs" / "new" / "predictions.csv").set_index("id")
    mine = scored.set_index("id").loc[evaluated.index]
    assert (mine["predicted"] == evaluated["predicted"]).all()
    assert mine["malignant_probability"].to_numpy() == pytest.approx(evaluated["malignant_probability"].to_numpy(), abs=1e-12)


def test_predict_takes_unlabelled_rows_in_other_layouts_one_row_each(results, small_csv, tmp_path):
    df = pd.read_csv(small_csv).drop(columns="diagnosis")
    df = pd.concat([df, df.head(2)])  # duplicates stay: one output row per input row
    shuffled = df[list(reversed(df.columns))].assign(note="x")
    shuffled.loc[shuffled.index[0], "area_worst"] = None  # imputed with the training median
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    out = predict(tmp_path / "new.csv", tmp_path / "scored.csv", results)
    assert out["rows"] == 62 and pd.read_csv(tmp_path / "scored.csv")["malignant_probability"].notna().all()


def test_predict_refuses_a_changed_model(results, small_csv, tmp_path):
    model = current_release(results) / "model.skops"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"release .*: its files differ from what was signed \(model.skops changed\)"):
        predict(small_csv, tmp_path / "scored.csv", results)
    assert not (tmp_path / "scored.csv").exists()


def test_predict_command_line(results, small_csv, tmp_path, env, monkeypatch, capsys):
    env = {**env, "RESULTS_DIR": str(results)}
    status, _, err = run_main("etl.predict", "--input", str(small_csv), "--output", str(tmp_path / "o.csv"), env=env,
                              monkeypatch=monkeypatch, capsys=capsys)
    assert status == 0, err
    assert len(pd.read_csv(tmp_path / "o.csv")) == 60
    bad = tmp_path / "bad.csv"
    bad.write_text(small_csv.read_text().replace("radius_mean", "radius_men"))
    status, _, err = run_main("etl.predict", "--input", str(bad), "--output", str(tmp_path / "o2.csv"), env=env,
                              monkeypatch=monkeypatch, capsys=capsys)
    assert status == 1 and len(err.splitlines()) == 1 and "required column(s) missing: 'radius_mean'" in err


def test_report_has_every_section_and_embedded_images_only(evaluated_runs):
    html = (evaluated_runs["new"] / "report.html").read_text()
    assert re.findall(r'<section id="([^"]+)"', html) == list(SECTIONS)
    images = re.findall(r'<img alt="" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    assert len(images) == 6  # class balance, ROC, PR, confusion, calibration, features
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing to fetch: opens offline
    for text in ("logistic_regression", "Threshold <b>", "95 % CI", "Logistic regression coefficients"):
        assert text in html, text
    metrics = json.loads((evaluated_runs["old"] / "metrics.json").read_text())
    old = (evaluated_runs["old"] / "report.html").read_text()
    assert html_module.escape(metrics["guarantee"]) in old and "Pooled over every row scored: caught " in old
    assert "<th>outer repeat</th>" in old and "exact_bound" in old  # per repeat; the other rule's price


@pytest.mark.parametrize(("candidate", "drivers"), [
    ("svm", "Permutation importance on the test split"), ("random_forest", "Feature importances")])
def test_report_explains_other_winners(tmp_path, small_csv, candidate, drivers):
    run = build_run(tmp_path / "run", small_csv, candidates=(candidate,))
    html = run.report.read_text()
    assert drivers in html and f": {candidate}</h1>" in html


def test_permutation_importance_is_sklearns_on_the_frame_without_a_warning(tmp_path, small_csv):
    """The report's permutation importance (models with neither coefficients nor impurity
    importances) runs on the array: the numbers are scikit-learn's on the named frame, bit for
    bit, and the array's lack of column names warns nothing."""
    import warnings

    from sklearn.inspection import permutation_importance

    from etl.data.schema import FEATURE_COLUMNS, LABEL_CODES, TARGET_COLUMN
    from etl.report import _drivers
    from etl.storage import load_object, read_frame

    run = build_run(tmp_path / "run", small_csv, candidates=("svm",), report=False)
    model, test = load_object(run.model), read_frame(run.test)
    X, y = test[list(FEATURE_COLUMNS)], test[TARGET_COLUMN].map(LABEL_CODES).to_numpy(dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        title, values = _drivers(model, X, y, random_state=7)
    expected = permutation_importance(model, X, y, scoring="roc_auc", n_repeats=5, random_state=7)
    assert title.startswith("Permutation importance")
    assert list(values.index) == list(FEATURE_COLUMNS)
    assert values.to_numpy().tolist() == expected.importances_mean.tolist()


def test_a_case_out_of_scope_gets_no_probability_and_no_call(results, small_csv, tmp_path):
    """Areas in another unit (x100): each such row is refused with the reason, the others scored."""
    rows = pd.read_csv(small_csv)
    rows.loc[:9, "area_worst"] *= 100
    rows.to_csv(tmp_path / "mixed.csv", index=False)
    scored = pd.read_csv(predict(tmp_path / "mixed.csv", tmp_path / "scored.csv", results)["predictions"])
    outside = scored.index < 10
    assert (scored.loc[outside, "call"] == "out of scope").all()
    assert scored.loc[outside, "malignant_probability"].isna().all() and scored.loc[outside, "predicted"].isna().all()
    assert scored.loc[outside, "out_of_scope"].str.startswith("area_worst ").all()
    assert scored.loc[~outside, "out_of_scope"].isna().all()  # empty in the CSV: in scope
    assert scored.loc[~outside, "call"].isin(["benign", "refer", "malignant"]).all()
    # reasons for every case called, none for a case out of scope
    assert scored.loc[outside, ["reason_1", "reason_2", "reason_3"]].isna().all().all()
    assert scored.loc[~outside, "reason_1"].str.fullmatch(r"[a-z_ ]+=\S+ \(p\d+\) [+-]\d+\.\d\d").all()
