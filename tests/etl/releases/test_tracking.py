"""MLflow tracking's pure parts (etl.releases.tracking): off without MLFLOW_TRACKING_URI, with
nothing imported; what a run's metrics become. The server is tests/e2e/test_tracking.py."""

import json
import subprocess
import sys

import pytest

from etl.releases.tracking import _metrics, track
from tests.conftest import PROJECT_ROOT


def test_off_without_a_tracking_uri_and_mlflow_never_imported(monkeypatch):
    script = ("import sys; from etl.releases.tracking import track; "
              "print(track(None, {}), [m for m in sys.modules if m.startswith('mlflow')])")
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["None", "[]"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert track(None, {}) is None


def test_a_runs_metrics_with_their_intervals(evaluated_runs):
    metrics = json.loads((evaluated_runs["old"] / "metrics.json").read_text())
    got = _metrics(metrics, {"passed": True}, published=True)
    assert got["test_recall"] == metrics["recall"] and got["test_recall_ci95_low"] == metrics["ci95"]["recall"][0]
    pooled = metrics["expected_performance"]["pooled"]
    assert got["expected_sensitivity"] == pooled["sensitivity"]
    assert got["expected_specificity_ci95_high"] == pooled["specificity_ci95"][1]
    assert got["threshold"] == metrics["threshold"] and got["malignant_threshold"] == metrics["triage"]["malignant_from"]
    assert got["gate_passed"] == 1.0 and got["published"] == 1.0
    assert "expected_referred" in got
    assert all(isinstance(v, float) for v in got.values())
    assert _metrics(metrics, {"passed": False}, published=False)["gate_passed"] == pytest.approx(0.0)
