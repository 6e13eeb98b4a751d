"""The statistics on the shipped data with the default settings (pipeline.toml, not the tests'
fast settings): what the README promises about expected performance and the quality gate.

The steps' cores run in-process (no Airflow: the DAG's wiring is tested elsewhere). A run of
the default procedure takes about 2 s on an idle machine; the clean runs of seeds 0-9 and 42
are made once for the session (``clean_run``) and copied.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from etl import storage
from etl.modeling.models import candidate_params
from etl.modeling.procedure import Procedure
from etl.orchestration import pipeline
from etl.settings import load_settings
from etl.storage.layout import RunPaths
from tests.conftest import decide_and_publish, made_once

#: pipeline.toml alone: the settings a user gets.
DEFAULTS = load_settings(environ={})


def _run(root: Path, csv: Path, seed: int, flip: float = 0.0) -> RunPaths:
    """load_data .. evaluate_model with the default settings (200 bootstrap resamples, no nested
    folds) and split seed ``seed``, as the DAG's tasks run them (``etl.orchestration.pipeline``); ``flip``: the
    share of training labels turned to the other class (bad training data)."""
    from dataclasses import replace


    s = replace(DEFAULTS, evaluation=replace(DEFAULTS.evaluation, bootstrap_resamples=200),
                nested_cv=replace(DEFAULTS.nested_cv, outer_folds=0))
    run = pipeline.Run.of_folder(s, RunPaths(root / "runs" / f"seed-{seed}{'-flipped' if flip else ''}"),
                              {"data_path": str(csv), "random_state": seed})
    pipeline.run_tasks(run, ["load_data", "preprocess_data"])
    if flip:
        folder = run.folder
        train, data = storage.read_frame(folder.train), storage.read_frame(folder.data)
        rows = np.random.default_rng(seed).random(len(train)) < flip
        flipped = set(train.loc[rows, "id"])
        for frame, path in ((train, folder.train), (data, folder.data)):  # the CV reads the raw rows
            turn = frame["id"].isin(flipped)
            frame.loc[turn, "diagnosis"] = frame.loc[turn, "diagnosis"].map({"M": "B", "B": "M"})
            storage.write_frame(frame, path)
    pipeline.run_tasks(run, ["train_model", "select_model", "evaluate_model"])
    return run.folder


@pytest.fixture
def clean_run(tmp_path_factory, shipped_csv):
    """``clean_run(seed, results)``: the evaluated clean run of ``seed`` copied into ``results``'s
    runs folder (made once per seed for the session, ``made_once``, as ``_run`` makes it)."""

    def copy_into(seed: int, results: Path) -> RunPaths:
        made = made_once(tmp_path_factory, f"clean-run-{seed}", lambda root: _run(root, shipped_csv, seed))
        target = results / "runs" / f"seed-{seed}"
        shutil.copytree(made / "runs" / f"seed-{seed}", target, symlinks=True)
        return RunPaths(target)

    return copy_into


def _save(run: RunPaths, results: Path) -> bool:
    return "release" in decide_and_publish(run.root, results, DEFAULTS.gate, keep_runs=100)


def _threshold_raised(run: RunPaths, misses: int) -> RunPaths:
    """A copy of ``run`` whose threshold is raised just above its ``misses`` lowest-scored caught
    malignant test rows (so it misses that many more), re-evaluated."""
    from etl.evaluate_model import evaluate_model

    raised = RunPaths(run.root.with_name(run.root.name + "-raised"))
    shutil.copytree(run.root, raised.root, symlinks=True)
    predictions = storage.read_frame(raised.predictions)
    threshold = storage.read_json(raised.training)["threshold"]["threshold"]
    caught = np.sort(predictions.loc[(predictions["diagnosis"] == "M")
                                     & (predictions["malignant_probability"] >= threshold), "malignant_probability"])
    training = storage.read_json(raised.training)
    training["threshold"]["threshold"] = float(caught[misses - 1] + 1e-9)
    storage.write_json(training, raised.training)
    evaluate_model(raised.model, raised.test, raised.training, raised.metrics, raised.predictions, 200, 0)
    return raised


@pytest.mark.timeout(1800)  # 50 outer folds of the default procedure: about 35 s idle, in-process
def test_the_pooled_nested_estimate_keeps_the_promise_with_the_defaults(shipped_csv):
    """5 outer folds x 10 repeats of the whole default procedure on the shipped data: the
    pooled sensitivity keeps the target and the specificity is not overpaid for; the three-way
    call keeps both its promises."""
    from etl.load_data import read_input, validate
    from etl.modeling.nested import run_outer_fold, summarize_folds

    data, _ = validate(read_input(shipped_csv), str(shipped_csv))
    s = DEFAULTS
    candidates = candidate_params(s.candidates, s.run_params)
    folds = [run_outer_fold(data, i, candidates, Procedure.of(s.selection, s.model.random_state), 5, 10) for i in range(50)]
    expected = summarize_folds(folds, s.selection.target_sensitivity)
    pooled = expected["pooled"]
    assert expected["rows_scored"] == 569 * 10 and pooled["malignant"] == 212 * 10
    assert len(expected["per_repeat"]) == 10 and all(r["malignant"] == 212 for r in expected["per_repeat"])
    assert pooled["sensitivity"] >= 0.970, pooled
    assert pooled["specificity"] >= 0.950, pooled
    assert pooled["sensitivity_ci95"][0] < pooled["sensitivity"] < pooled["sensitivity_ci95"][1]
    # The three-way call's two promises on unseen patients (docs/model.md, "The three-way call"):
    # malignant cleared as benign at most 3 %, benign called malignant at most 1 %, pooled.
    triage = expected["triage"]["pooled"]
    assert triage["malignant"] == 212 * 10 and triage["benign"] == 357 * 10
    assert triage["malignant_called_benign"] <= 0.03 and triage["benign_called_malignant"] <= 0.01, triage
    assert triage["referred"] <= 0.04, triage  # candidates selected on the referral share (docs/model.md)
    assert triage["malignant_called_benign"] == pytest.approx(1 - pooled["sensitivity"])  # the same first threshold
    print(f"referred {triage['referred']:.4f} {triage['referred_ci95']}; benign called malignant "
          f"{triage['benign_called_malignant']:.4f}; malignant called benign {triage['malignant_called_benign']:.4f}")


@pytest.mark.timeout(1800)  # 11 runs of the default procedure: a minute on a busy 2-core machine
def test_runs_with_other_seeds_are_compared_with_the_published_model_and_published(tmp_path, clean_run):
    """After publishing with seed 42, runs with seeds 0-9 (in turn) hold out the same test rows
    (the hash split): each is compared with the published model, and the equally good ones
    are published."""
    results = tmp_path / "results"
    assert _save(clean_run(42, results), results)
    published, decided = [], []
    for seed in range(10):
        run = clean_run(seed, results)
        if _save(run, results):
            published.append(seed)
        comparison = storage.read_json(run.gate)["comparison"]
        if comparison["decided"]:
            decided.append(seed)
            assert comparison["rows"] == 114 and comparison["excluded_trained_on_by_published"] == 0
    assert len(decided) >= 9, decided
    assert len(published) >= 8, published


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 42])
def test_a_model_trained_on_bad_labels_is_refused(tmp_path, shipped_csv, clean_run, seed):
    """20 % of the training labels flipped: refused by the comparison with a clean model, and
    what was published stays."""
    results = tmp_path / "results"
    assert _save(clean_run(seed, results), results)
    before = (results / "manifest.json").read_bytes()
    worse = _run(results, shipped_csv, seed, flip=0.2)
    assert not _save(worse, results)
    assert (results / "manifest.json").read_bytes() == before
    verdict = storage.read_json(worse.gate)
    assert verdict["comparison"]["decided"] and verdict["comparison"]["rows"] == 114
    compared = [c for c in verdict["checks"] if "than published" in c["check"]]
    assert len(compared) == 3 and not all(c["passed"] for c in compared), compared


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 42])
def test_a_model_missing_four_more_tumours_is_refused_by_the_comparison(tmp_path, clean_run, seed):
    """The same model with its threshold raised to miss 4 more malignant test rows: the paired
    sensitivity comparison refuses it (not only the floor)."""
    results = tmp_path / "results"
    clean = clean_run(seed, results)
    assert _save(clean, results)
    before = (results / "manifest.json").read_bytes()
    raised = _threshold_raised(clean, 4)
    assert not _save(raised, results)
    assert (results / "manifest.json").read_bytes() == before
    checks = {c["check"].split(" ")[0]: c for c in storage.read_json(raised.gate)["checks"]
              if "than published" in c["check"]}
    assert not checks["sensitivity"]["passed"], checks["sensitivity"]
    assert checks["sensitivity"]["missed_only_by_new"] - checks["sensitivity"]["missed_only_by_published"] == 4
