"""The model card (``etl.releases.model_card``): every number from the run's records, the prose from one
template; its HTML; and the statistics it shows (calibration, decision curve)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from etl.modeling.stats import calibration_table, clopper_pearson, net_benefit
from etl.releases import model_card
from etl.releases.manifest import code_revision, library_versions
from tests.conftest import decide_and_publish

#: A number as the card writes it: not part of a word, a hash or a path.
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")


def _numbers(text: str) -> set[str]:
    return set(NUMBER.findall(re.sub(r"`[^`]*`", "", text)))  # code spans: paths, hashes, run ids


def _written(value, out: set[str]) -> set[str]:
    """Every way the card may write a recorded value (``pct``, ``num``, ``int``), recursively."""
    if isinstance(value, bool) or value is None:
        return out
    if isinstance(value, (int, float)):
        out |= {f"{100 * value:.0f}", f"{100 * value:.1f}", f"{value:.3f}", f"{value:.4f}", str(value)}
        if float(value).is_integer():
            out.add(str(int(value)))
    elif isinstance(value, str):
        out |= _numbers(value)
    elif isinstance(value, dict):
        for v in value.values():
            _written(v, out)
    elif isinstance(value, list):
        for v in value:
            _written(v, out)
    return out


def test_every_number_of_the_card_is_one_of_the_runs_records(evaluated_runs):
    """The card of a run with nested CV (calibration and decision curve included): each number
    it prints is a value of ``metrics.json``, ``gate.json``, ``training.json`` or
    ``profile.json`` (or of the versions and revision it names), or part of the template's prose."""
    run = evaluated_runs["old"]
    card = (run / "model_card.md").read_text()
    records = {name: json.loads((run / name).read_text())
               for name in ("metrics.json", "gate.json", "training.json", "profile.json")}
    allowed = _written(records, set()) | _written([library_versions(), code_revision()], set())
    prose = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", model_card.TEMPLATE.read_text(), flags=re.S)
    allowed |= _numbers(prose)
    assert _numbers(card) - allowed == set()

    metrics, gate = records["metrics.json"], records["gate.json"]
    pooled = metrics["expected_performance"]["pooled"]
    cm = pooled["confusion_matrix"]
    assert f"{cm['tp']} of {pooled['malignant']} malignant caught, {cm['fn']} missed" in card
    assert f"{model_card.pct(pooled['sensitivity'])} |" in card
    for band in metrics["expected_performance"]["calibration"]["bands"]:
        assert (f"| {model_card.pct(band['band'][0], 0)} to {model_card.pct(band['band'][1], 0)} | {band['cases']} | "
                f"{model_card.pct(band['mean_predicted'])} | {model_card.pct(band['observed'])} |") in card
    for point in metrics["expected_performance"]["decision_curve"]:
        assert (f"| {model_card.pct(point['threshold'], 0)} | {model_card.num(point['model'])} | "
                f"{model_card.num(point['treat_all'])} |") in card
    for check in gate["checks"]:
        assert f"| {check['check']} | {model_card.num(check['value'], 4)} |" in card
    assert metrics["guarantee"] in card and records["profile.json"]["source_sha256"] in card
    assert "## Intended use" in card and "## Out of scope" in card and "no person signs this release off" in card


def test_the_out_of_sample_tables_are_the_nested_folds_predictions(evaluated_runs):
    """Calibration and decision curve in ``metrics.json`` are computed from every outer fold's
    held-out predictions, pooled (the same rows ``pooled`` counts)."""
    run = evaluated_runs["old"]
    metrics = json.loads((run / "metrics.json").read_text())
    folds = [json.loads(p.read_text()) for p in sorted((run / "nested").glob("fold-*.json"))]
    y = np.concatenate([f["predictions"]["malignant"] for f in folds])
    p = np.concatenate([f["predictions"]["probability"] for f in folds])
    assert len(y) == metrics["expected_performance"]["rows_scored"]
    assert int(y.sum()) == metrics["expected_performance"]["pooled"]["malignant"]
    assert metrics["expected_performance"]["calibration"]["bands"] == calibration_table(y, p)
    assert metrics["expected_performance"]["decision_curve"] == net_benefit(y, p)


def test_calibration_and_net_benefit_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.6, 0.55, 0.1, 0.3, 0.02])
    low, high = calibration_table(y, p, bands=(0.0, 0.5, 1.0))
    assert (low["cases"], low["malignant"], low["observed"]) == (3, 1, 1 / 3)
    assert low["mean_predicted"] == pytest.approx((0.1 + 0.3 + 0.02) / 3)
    assert low["observed_ci95"] == list(clopper_pearson(1, 3))
    assert (high["cases"], high["malignant"]) == (3, 2) and high["band"] == [0.5, 1.0]
    (at_half,) = net_benefit(y, p, thresholds=(0.5,))
    # treated: p >= 0.5 (rows 0, 1, 2): 2 true positives, 1 false positive, odds 1
    assert at_half == {"threshold": 0.5, "model": pytest.approx(1 / 6), "treat_all": 0.0, "treat_none": 0.0}
    (at_tenth,) = net_benefit(y, p, thresholds=(0.1,))  # rows 0-4 treated: 3 TP, 2 FP, odds 1/9
    assert at_tenth["model"] == pytest.approx((3 - 2 / 9) / 6) and at_tenth["treat_all"] == pytest.approx(0.5 - 0.5 / 9)
    # two patients scored twice each (repeated outer folds): the interval is at two, not four
    assert calibration_table([1, 0, 1, 0], [0.9, 0.9, 0.9, 0.9], bands=(0.0, 1.0), repeats=2)[0][
        "observed_ci95"] == list(clopper_pearson(1, 2))


def test_the_release_card_carries_the_release_and_its_signoff(tmp_path, evaluated_runs):
    results = tmp_path / "results"
    run = results / "runs" / "r1"
    shutil.copytree(evaluated_runs["new"], run)
    out = decide_and_publish(run, results)
    release = results / "current"
    card = (release / "model_card.md").read_text()
    assert out["model_card.md"] == str(results / "model_card.md")
    assert (results / "model_card.md").read_text() == card
    assert f"Release `{release.resolve().name}`" in card and "no person signs this release off" in card
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["signoff"] == {"decision": "auto"}
    assert set(manifest["documents"]) == {"model_card.md"}
    import hashlib

    assert manifest["documents"]["model_card.md"]["sha256"] == hashlib.sha256(card.encode()).hexdigest()
    assert "model_card.md" not in manifest["artifacts"]  # not part of the release's content hash


@pytest.mark.parametrize("signoff, markdown, html", [
    ({"decision": "auto"}, 'Decided by the quality gate alone (`[release] approval = "auto"`): no person signs',
     'Decided by the quality gate alone (<code>[release] approval = &#34;auto&#34;</code>): no person signs'),
    ({"decision": "pending", "approvers": ["ana", "ben"]}, "Awaiting sign-off by ana, ben: answer under Browse",
     "Awaiting sign-off by ana, ben: answer under Browse"),
    ({"decision": "approved", "by": {"id": "ana", "name": "ana"}, "at": "2026-12-01T10:00:00+00:00",
      "comment": "read it"}, "Approved by **ana** at 2026-12-01T10:00:00+00:00. Comment: “read it”.",
     "Approved by <b>ana</b> at 2026-12-01T10:00:00+00:00. Comment: “read it”."),
    ({"decision": "rejected", "by": {"id": "ben", "name": "<ben>"}, "at": "t", "comment": "too few cases"},
     "Rejected by **<ben>** at t: not published; the published release is unchanged. Comment: “too few cases”.",
     "Rejected by <b>&lt;ben&gt;</b> at t: not published"),
    ({"decision": "timed_out", "at": "t"}, "No answer by t: not published.", "No answer by t: not published."),
    (None, "Not recorded", "Not recorded"),
])
def test_the_signoff_sentence_is_written_once_for_the_card_and_the_ui(signoff, markdown, html, evaluated_runs):
    """``wording.j2`` says a sign-off once: Markdown for the card, HTML (escaped) for the UI."""
    from etl.releases.wording import signoff as sentence

    assert markdown in sentence(signoff, html=False)
    assert html in sentence(signoff, html=True)
    records = [json.loads((evaluated_runs["old"] / f"{name}.json").read_text())
               for name in ("metrics", "training", "gate", "profile")]
    card = model_card.render(model_card.card_facts(*records, {"run_id": "r", "run_key": "k"}), signoff)
    assert sentence(signoff or model_card.AUTO, html=False) in card


def test_the_html_card_renders_tables_and_escapes_raw_html():
    page = model_card.to_html("# Card\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nComment: <script>alert(1)</script>")
    assert "<table>" in page and "<td>1</td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
