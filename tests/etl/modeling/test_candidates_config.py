"""A registered candidate is enabled through a config file alone (docs/model.md, "Adding a
candidate"): the settings, the DAG's mapped train_model, training and selection all follow."""

import json
import os
import subprocess
import sys
from dataclasses import replace

from etl.modeling.models import REGISTRY, candidate_params
from etl.settings import load_settings
from etl.train_model import select_model, train_candidate
from tests.conftest import CANDIDATES, PROJECT_ROOT

EXTRA = "extra_trees"


def _config(tmp_path):
    path = tmp_path / "extra.toml"
    path.write_text(f"[candidates]\nenabled = {json.dumps([*CANDIDATES[:1], EXTRA])}\n")
    return path


def test_the_extra_candidate_is_registered_and_not_enabled_by_default():
    assert EXTRA in REGISTRY and EXTRA not in CANDIDATES
    assert EXTRA not in load_settings(PROJECT_ROOT / "pipeline.toml").candidates


def test_a_config_file_enables_it_for_training_and_selection(tmp_path, evaluated_runs):
    settings = load_settings(f"{PROJECT_ROOT / 'tests' / 'fast.toml'}:{_config(tmp_path)}")
    assert list(settings.candidates) == [CANDIDATES[0], EXTRA]
    params = candidate_params(settings.candidates, settings.run_params)
    assert params[EXTRA] == {"n_estimators": 100, "min_samples_leaf": 2, "max_features": "sqrt"}  # pipeline.toml's
    run = evaluated_runs["new"]
    for name in settings.candidates:
        out = train_candidate(run / "data.parquet", run / "train.parquet", name, params[name], tmp_path / name, 3, 1, 0)
        assert json.loads((tmp_path / name / "cv.json").read_text())["candidate"] == name, out
    record = select_model({n: tmp_path / n for n in settings.candidates}, tmp_path / "model.pkl",
                          tmp_path / "training.json", replace(settings.selection, target_sensitivity=0.9))
    training = json.loads((tmp_path / "training.json").read_text())
    ranked = training["selection"]["cross_validation"]
    assert set(ranked) == {CANDIDATES[0], EXTRA} and record["candidate"] in ranked


def test_the_dag_maps_train_model_over_it(tmp_path):
    script = (
        "import json, sys; from airflow.dag_processing.dagbag import DagBag; "
        "bag = DagBag(dag_folder=sys.argv[1]); "
        "t = bag.dags['breast_cancer_etl_pipeline'].get_task('train_model'); "
        "print(json.dumps({'errors': list(bag.import_errors), "
        "'candidates': [k['candidate'] for k in t.expand_input.value['op_kwargs']]}))"
    )
    env_config = f"{PROJECT_ROOT / 'tests' / 'fast.toml'}:{_config(tmp_path)}"
    proc = subprocess.run([sys.executable, "-c", script, str(PROJECT_ROOT / "dags")], check=False,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIPELINE_CONFIG": env_config})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"errors": [], "candidates": [CANDIDATES[0], EXTRA]}
