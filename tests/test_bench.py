"""``make bench``'s own code, without measuring anything: its tables build from a results record
whose DAG runs have every task instance the DAG has (a new task cannot break them again), and
its no-op DAG has the pipeline DAG's exact shape."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", PROJECT_ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _instances() -> list[str]:
    """Every task instance of a run of the pipeline DAG, as the benchmark labels them."""
    from dags.pipeline_dag import dag

    labels = []
    for task in dag.tasks:
        expand = getattr(task, "expand_input", None)
        if expand is None:
            labels.append(task.task_id)
        else:
            labels += [f"{task.task_id}[{next(iter(kw.values()))}]" for kw in expand.value["op_kwargs"]]
    return labels


def _run(labels: list[str], seconds: float) -> dict:
    return {"seconds": seconds, "peak_bytes": 2**28, "task_seconds": seconds / 2,
            "tasks": [{"task": t, "state": "success", "seconds": 0.1} for t in labels]}


def _results(labels: list[str]) -> dict:
    chain = {"steps": {}, "seconds": 10.0, "peak_bytes": 2**29}
    size = {"rows": 200000, "csv_bytes": 2**25, "bare": {"seconds": 4.0, "peak_bytes": 2**28},
            "chain": {**chain, "steps": {"load_data": {"seconds": 1.0, "peak_bytes": 2**28},
                                         "nested_cv": {"seconds": 2.0, "peak_bytes": 2**28}}},
            "chain_over_bare": 2.5,
            "scoring": {"predict_seconds": 3.0, "score_seconds": 4.0, "score_over_predict": 4 / 3,
                        "score_peak_bytes": 2**28}}
    return {"date": "2026-12-01", "machine": {"cpus": 2, "python": "3.11", "airflow": "3.3.2", "pandas": "2",
                                              "sklearn": "1.7"},
            "dags": {"parse": {"median_ms": 20.0}, "bare": {"seconds": 2.0, "peak_bytes": 2**27, "fits": 9},
                     "noop_dag": _run(labels, 10.0), "dag_same_work": _run(labels[:-1], 13.0),
                     "noop_dag_shipped": _run(labels, 11.0), "dag_shipped_settings": _run(labels, 20.0)},
            "scheduler": {"pipeline": {**_run(labels, 30.0), "queued_to_start": 1.0, "start_to_end": 28.0},
                          "noop": {"seconds": 27.0, "queued_to_start": 1.0, "start_to_end": 25.0},
                          "variants": {"airflow_defaults": {
                              "pipeline": {**_run(labels, 41.0), "queued_to_start": 1.0, "start_to_end": 39.0},
                              "noop": {"seconds": 33.0, "queued_to_start": 1.0, "start_to_end": 31.0}}}},
            "sizes": {"569": {**size, "rows": 569, "verify": {"verify_ms": 1.2, "load_ms": 40.0, "files": 8,
                                                               "bytes": 435574}},
                      "200000": size, "1000000": {**size, "rows": 1000000}}}


def test_the_tables_build_from_a_record_with_every_task_of_the_dag(bench):
    labels = _instances()
    assert any("[" in label for label in labels)  # the mapped instances are there
    record = _results(labels)
    record["verdicts"] = bench.verdicts(record)
    table = bench.markdown(record)
    for label in labels:
        assert f"| {label} |" in table, label
    assert [v["met"] for v in record["verdicts"]] == [True] * 8
    assert "| verifying the shipped model's release before a load (signature, every file) | <= 50 ms | 1.2 ms" in table
    assert "| 13.0 - 10.0" not in table and "3.0 s vs 2.0 s = 1.5x" in table  # same-shape no-op subtracted
    assert "30.0 - 27.0 = 3.0 s vs 2.0 s = 1.5x" in table  # trigger to done, minus the no-op
    # What the stack's tuning bought: Airflow's defaults beside the stack as shipped.
    assert "| 33.0 s | 41.0 s | 8.0 s | 20.5 s |" in table and "| 27.0 s | 30.0 s | 3.0 s | 15.0 s |" in table


def test_the_noop_dag_has_the_pipelines_shape(bench, tmp_path, monkeypatch):
    shape = bench.pipeline_shape(dict(os.environ), tmp_path / "shape.json")
    monkeypatch.setenv("NOOP_SHAPE", str(shape))
    from airflow.dag_processing.dagbag import DagBag

    from dags.pipeline_dag import dag as pipeline

    noop = DagBag(dag_folder=str(PROJECT_ROOT / "bench" / "dags")).dags["bench_noop"]
    assert sorted(noop.task_ids) == sorted(pipeline.task_ids)
    for task in pipeline.tasks:
        twin = noop.get_task(task.task_id)
        assert twin.upstream_task_ids == task.upstream_task_ids, task.task_id
        mapped = getattr(task, "expand_input", None)
        assert (getattr(twin, "expand_input", None) is None) == (mapped is None), task.task_id
        if mapped is not None:
            assert list(twin.expand_input.value["op_kwargs"]) == list(mapped.value["op_kwargs"])
            assert twin.map_index_template == task.map_index_template
    assert bench.instances(shape) == len(_instances()) == len(json.loads(shape.read_text())["tasks"]) + sum(
        len(t["op_kwargs"]) - 1 for t in json.loads(shape.read_text())["tasks"] if t["op_kwargs"] is not None)
