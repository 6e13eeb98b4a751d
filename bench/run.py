"""The benchmark (``make bench``): what the pipeline costs against a plain script, on this machine.

Measured in one run, written to ``bench/results.json`` and ``bench/results.md``, and copied into
docs/benchmark.md between its ``bench:begin`` / ``bench:end`` markers:

1. DAG parse time: ``airflow dags report -o json``, median of 5.
2. On the shipped data: the bare one-process script (``bench/bare.py``, the floor); a no-op DAG
   with the same task instances (``bench/dags/noop_dag.py``, Airflow's own fixed cost); the
   pipeline DAG under ``airflow dags test`` with the same modelling work as the script
   (``bench/bench.toml``) and with the shipped settings, each task's duration from Airflow's
   task instances.
3. The etl chain, one process per step as Airflow runs them (``python -m etl.<step>``), on 569,
   20k, 200k and 1M rows of WDBC-like data (the shipped rows resampled with 2 % jitter, seed 0):
   wall time and peak memory (max RSS) per step and in total, against the bare script on the
   same file.

Targets (the 2-core machine): parse <= 30 ms; DAG - no-op DAG <= 2x the bare script (shipped
data, same work); chain at 200k <= 3x the bare script and <= 1.5 GiB peak; 1M <= 5x the 200k
chain time.

Usage: python bench/run.py [--sizes 569,20000,200000,1000000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCH = PROJECT_ROOT / "bench"
SHIPPED = PROJECT_ROOT / "data" / "wdbc.csv"
DAG_ID = "breast_cancer_etl_pipeline"
#: The etl chain, one process per step in the DAG's order (select_model runs inside train_model's
#: command line, as its CLI chains them).
STEPS = ("load_data", "preprocess_data", "train_model", "nested_cv", "evaluate_model", "quality_gate", "report",
         "save_results", "upload_results")
TARGETS = {"parse_ms": 30, "dag_over_bare": 2.0, "chain_200k_over_bare": 3.0, "chain_200k_peak_gib": 1.5,
           "chain_1m_over_200k": 5.0, "score_200k_over_predict": 1.5, "scheduler_over_bare": 2.0,
           "verify_ms": 50, "decision_200k_over_plain": 3.0}
BENCH_CONFIG = BENCH / "bench.toml"
GIB = 1024 ** 3


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


#: Runs a command and reports its wall time and max RSS. A separate small process: Linux counts
#: the memory of the process a command was forked from in the command's max RSS, so forking
#: from this (large) process would inflate every measurement.
LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": time.perf_counter() - started, "returncode": os.waitstatus_to_exitcode(status),
               "peak_bytes": usage.ru_maxrss * 1024}, fh)
"""


def measure(args: list[str], env: dict[str, str], cwd: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Run a command; its wall time, peak memory (max RSS of the process) and output."""
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "usage.json"
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(record), *args], check=False, env=env, cwd=cwd,
                              capture_output=True, text=True)
        usage = json.loads(record.read_text()) if record.exists() else {"returncode": proc.returncode}
    if proc.returncode or usage["returncode"]:
        raise RuntimeError(f"{' '.join(args)} exited {usage['returncode']}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return {"seconds": usage["seconds"], "peak_bytes": usage["peak_bytes"], "output": proc.stdout}


def wdbc_like(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows resampled from the shipped data, each feature value times (1 + N(0, 0.02)),
    ids 1..rows: the same classes, ranges and correlations, no duplicate rows."""
    base = pd.read_csv(SHIPPED)
    rng = np.random.default_rng(seed)
    sample = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    features = [c for c in base.columns if c not in ("id", "diagnosis")]
    values = sample[features].to_numpy() * (1 + rng.normal(0, 0.02, (rows, len(features))))
    out = pd.DataFrame(values, columns=features).round(6)
    out.insert(0, "diagnosis", sample["diagnosis"].to_numpy())
    out.insert(0, "id", np.arange(1, rows + 1))
    return out


def base_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW__SECRETS", "RESULTS_", "UPLOAD_", "DATA_PATH", "PIPELINE_CONFIG"))}
    env.update({
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "RESULTS_DIR": str(work / "results"),
        "UPLOAD_URI": str(work / "uploads"),
    })
    return env


# -- 1. parse time ------------------------------------------------------------------------------


def parse_time(env: dict[str, str]) -> dict[str, Any]:
    samples = []
    for _ in range(5):
        out = measure(["airflow", "dags", "report", "-o", "json"], env)["output"]
        report = json.loads([line for line in out.splitlines() if line.startswith("[{")][-1])
        (entry,) = [r for r in report if r["file"].endswith("pipeline_dag.py")]
        samples.append(_seconds(entry["duration"]) * 1000)
    return {"median_ms": statistics.median(samples), "samples_ms": samples}


def _seconds(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    h, m, s = str(value).split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


# -- 2. DAG runs on the shipped data ------------------------------------------------------------


def task_durations(airflow_home: Path, dag_id: str) -> list[dict[str, Any]]:
    """Each task instance of the DAG's latest run: id, map index, state, duration (s)."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (run_id,) = db.execute("SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1",
                               (dag_id,)).fetchone()
        rows = db.execute("SELECT task_id, map_index, rendered_map_index, state, duration FROM task_instance "
                          "WHERE dag_id=? AND run_id=? ORDER BY start_date", (dag_id, run_id)).fetchall()
    return [{"task": t + (f"[{r or m}]" if m >= 0 else ""), "state": s, "seconds": d or 0.0}
            for t, m, r, s, d in rows]


def dag_run(env: dict[str, str], dag_id: str, date: str) -> dict[str, Any]:
    result = measure(["airflow", "dags", "test", dag_id, date], env)
    tasks = task_durations(Path(env["AIRFLOW_HOME"]), dag_id)
    if any(t["state"] != "success" for t in tasks):
        raise RuntimeError(f"{dag_id}: {tasks}")
    return {"seconds": result["seconds"], "peak_bytes": result["peak_bytes"], "tasks": tasks,
            "task_seconds": sum(t["seconds"] for t in tasks)}


def median_run(env: dict[str, str], dag_id: str, dates: list[str]) -> dict[str, Any]:
    """``dag_run`` on each date; the run with the median wall time, with every wall time."""
    runs = sorted((dag_run(env, dag_id, date) for date in dates), key=lambda r: r["seconds"])
    return {**runs[len(runs) // 2], "walls": [r["seconds"] for r in runs]}


def shipped_data_runs(work: Path) -> dict[str, Any]:
    env = base_env(work)
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    log("DAG parse time")
    parse = parse_time(env)
    log("bare script, shipped data")
    bare = _bare(SHIPPED, work / "bare-shipped", env)
    same = {**env, "PIPELINE_CONFIG": str(BENCH_CONFIG)}
    same_shape, shipped_shape = pipeline_shape(same, work / "shape-same.json"), pipeline_shape(env, work / "shape-shipped.json")
    noop_env = {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(BENCH / "dags")}
    log(f"no-op DAG of the pipeline's shape ({instances(same_shape)} task instances), then the pipeline DAG with "
        "the same work; median of 3 each")
    dates = ["2024-01-01", "2024-01-02", "2024-01-03"]
    noop = median_run({**noop_env, "NOOP_SHAPE": str(same_shape)}, "bench_noop", dates)
    same_work = median_run({**same, "RESULTS_DIR": str(work / "results-dag")}, DAG_ID, dates)
    log(f"no-op DAG ({instances(shipped_shape)} task instances), then the pipeline DAG with the shipped settings")
    noop_shipped = dag_run({**noop_env, "NOOP_SHAPE": str(shipped_shape)}, "bench_noop", "2024-01-04")
    shipped = dag_run({**env, "RESULTS_DIR": str(work / "results-dag-shipped")}, DAG_ID, "2024-01-04")
    return {"parse": parse, "bare": bare, "noop_dag": noop, "dag_same_work": same_work,
            "noop_dag_shipped": noop_shipped, "dag_shipped_settings": shipped}


def bare_args() -> list[str]:
    """The bare script's numbers: the benchmark settings' (``bench/bench.toml``), nested folds
    included, so that it does the pipeline's modelling work."""
    from etl.settings import load_settings

    s = load_settings(BENCH_CONFIG, environ={})
    if list(s.candidates) != ["logistic_regression"]:
        raise SystemExit("bench/bench.toml must enable the logistic regression alone: the bare script fits only it")
    return ["--cv-folds", str(s.selection.cv_folds), "--cv-repeats", str(s.selection.cv_repeats),
            "--outer-folds", str(s.nested_cv.outer_folds), "--outer-repeats", str(s.nested_cv.outer_repeats)]


def _bare(csv: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    result = measure([sys.executable, str(BENCH / "bare.py"), str(csv), str(out), *bare_args()], env)
    inner = json.loads(result["output"].strip().splitlines()[-1])
    return {"seconds": result["seconds"], "peak_bytes": result["peak_bytes"],
            "in_process_seconds": inner["seconds"], "roc_auc": inner["roc_auc"], "fits": inner["fits"]}


#: Prints the pipeline DAG's shape as JSON: each task's id, its upstream ids and, for a mapped
#: task, its instances' op_kwargs (what bench/dags/noop_dag.py rebuilds with no-op tasks).
SHAPE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]]
print(json.dumps({"tasks": [{"task_id": t.task_id, "upstream": sorted(t.upstream_task_ids),
                             "op_kwargs": (list(t.expand_input.value["op_kwargs"])
                                           if getattr(t, "expand_input", None) is not None else None),
                             "map_index_template": getattr(t, "map_index_template", None)}
                            for t in dag.tasks]}))
"""


def pipeline_shape(env: dict[str, str], out: Path) -> Path:
    """Write the pipeline DAG's shape under ``env``'s settings to ``out`` (``SHAPE``)."""
    proc = subprocess.run([sys.executable, "-c", SHAPE, str(PROJECT_ROOT / "dags"), DAG_ID], env=env,
                          check=True, capture_output=True, text=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(proc.stdout.strip().splitlines()[-1])
    return out


def instances(shape: Path) -> int:
    """How many task instances a run of the DAG of ``shape`` has."""
    return sum(len(t["op_kwargs"]) if t["op_kwargs"] is not None else 1
               for t in json.loads(shape.read_text())["tasks"])


# -- 3. through the scheduler -------------------------------------------------------------------


#: The local stack's tuning (scripts/airflow-stack.sh), measured against Airflow's defaults: each
#: variant's settings over the stack's, in the order they were added.
SCHEDULER_VARIANTS = {
    "airflow_defaults": {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                         "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1.0"},
    "preload_only": {"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1.0"},
}
SCHEDULER_LABELS = {"airflow_defaults": "Airflow's defaults (LocalExecutor, `scheduler_idle_sleep_time` 1 s)",
                    "preload_only": "the preloading executor (`etl/runtime/executor.py`), idle sleep 1 s",
                    "stack": "`make airflow` as shipped: the preloading executor, idle sleep 0.5 s"}


def scheduler_runs(work: Path, shape: Path) -> dict[str, Any]:
    """``through_scheduler`` with the stack as shipped and with each of ``SCHEDULER_VARIANTS``."""
    runs = {name: through_scheduler(work / name, shape, overrides) for name, overrides in SCHEDULER_VARIANTS.items()}
    return {**through_scheduler(work / "stack", shape), "variants": runs}


def through_scheduler(work: Path, shape: Path, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """``make airflow`` (standalone: scheduler, LocalExecutor, SQLite; the execution API in its own
    process) on free ports with the benchmark settings, the pipeline DAG and its same-shape no-op
    DAG in one DAG folder; each triggered through the REST API as the UI's form does, timed from
    the trigger's answer to the run's end (a no-op run first, to warm the stack, then the pipeline
    and the no-op again). ``overrides``: settings over the stack's own (``SCHEDULER_VARIANTS``)."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from deploy.net import Api, free_port, wait_for

    dags = work / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    for source in (PROJECT_ROOT / "dags" / "pipeline_dag.py", BENCH / "dags" / "noop_dag.py"):
        (dags / source.name).symlink_to(source)
    port = free_port()
    env = {**base_env(work), "PIPELINE_AIRFLOW_HOME": str(work / "airflow"), "PIPELINE_SECRETS_DIR": str(work / "secrets"),
           "PIPELINE_DAGS_FOLDER": str(dags), "AIRFLOW__API__PORT": str(port),
           "PIPELINE_EXECUTION_API_PORT": str(free_port()), "PIPELINE_CONFIG": str(BENCH_CONFIG),
           "NOOP_SHAPE": str(shape), "SCORING_INBOX": str(work / "incoming")}
    for name in ("AIRFLOW__API__HOST", "AIRFLOW__CORE__DAGS_FOLDER", *SCHEDULER_VARIANTS["airflow_defaults"]):
        env.pop(name, None)
    env.update(overrides or {})
    with open(work / "airflow.log", "w") as out:
        proc = subprocess.Popen(["make", "--no-print-directory", "airflow"], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"make airflow exited: {(work / 'airflow.log').read_text()[-3000:]}")

    try:
        api = Api(f"http://127.0.0.1:{port}")
        wait_for(lambda: api.call("GET", "/api/v2/monitor/health")[0] == 200, 600, "the api-server", alive=alive)
        api.login("admin")
        for dag_id in ("bench_noop", DAG_ID):
            wait_for(lambda d=dag_id: api.call("GET", f"/api/v2/dags/{d}")[0] == 200, 600, f"{dag_id} parsed", alive=alive)

        def run(dag_id: str) -> dict[str, Any]:
            status, body = api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {}})
            started = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"trigger {dag_id}: {status} {body}")
            done = wait_for(lambda: (lambda r: r[1] if r[1].get("state") in ("success", "failed") else None)(
                api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{body['dag_run_id']}")), 1800, f"{dag_id} to finish",
                interval=0.25, alive=alive)
            seconds = time.perf_counter() - started
            if done["state"] != "success":
                raise RuntimeError(f"{dag_id}: {done}")

            def at(key: str) -> float:
                from datetime import datetime

                return datetime.fromisoformat(done[key].replace("Z", "+00:00")).timestamp()
            _, listing = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{body['dag_run_id']}/taskInstances")
            tasks = [{"task": t["task_id"] + (f"[{t.get('rendered_map_index') or t['map_index']}]"
                                              if t["map_index"] >= 0 else ""),
                      "state": t["state"], "seconds": t["duration"] or 0.0} for t in listing["task_instances"]]
            return {"seconds": seconds, "queued_to_start": at("start_date") - at("queued_at"),
                    "start_to_end": at("end_date") - at("start_date"), "tasks": tasks,
                    "task_seconds": sum(t["seconds"] for t in tasks)}

        log(f"through the scheduler ({(work.name)}): a no-op run to warm up, then the pipeline, then the no-op")
        run("bench_noop")
        pipeline = run(DAG_ID)
        noop = run("bench_noop")
        log(f"through the scheduler: pipeline {pipeline['seconds']:.1f} s, no-op {noop['seconds']:.1f} s")
        return {"pipeline": pipeline, "noop": noop}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


# -- 4. the etl chain by size -------------------------------------------------------------------


def chain(csv: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Every step as its own process (``python -m etl.<step>``), chained through the files of
    ``<results>/runs/cli`` as the DAG chains them through its run folder."""
    env = {**env, "PIPELINE_CONFIG": str(BENCH / "bench.toml"), "DATA_PATH": str(csv),
           "RESULTS_DIR": str(work / "results"), "UPLOAD_URI": str(work / "uploads")}
    steps = {}
    for step in STEPS:
        result = measure([sys.executable, "-m", f"etl.{step}"], env)
        steps[step] = {"seconds": result["seconds"], "peak_bytes": result["peak_bytes"]}
    metrics = json.loads((work / "results" / "metrics.json").read_text())
    return {"steps": steps, "seconds": sum(s["seconds"] for s in steps.values()),
            "peak_bytes": max(s["peak_bytes"] for s in steps.values()), "roc_auc": metrics["roc_auc"]}


#: Verifying the published release (etl.releases.reader.read_release: its files read, hashed and
#: checked against the signature with the trusted keys, which it loads), and loading it
#: (open_release: verified, then the model and scaler built from their skops files); warm, the
#: median of 30 each, in a process of the chain's environment.
VERIFY = """
import json, statistics, time
from etl.releases.reader import current_release, open_release, read_release
from etl.settings import load_settings
release = current_release(load_settings().results_dir)
open_release(release)  # the imports, once
def median_ms(call):
    times = []
    for _ in range(30):
        started = time.perf_counter(); call(); times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
files = read_release(release).files
print(json.dumps({"verify_ms": median_ms(lambda: read_release(release)), "load_ms": median_ms(lambda: open_release(release)),
                  "files": len(files) + 1, "bytes": sum(map(len, files.values()))}))
"""


def verification(work: Path, env: dict[str, str]) -> dict[str, Any]:
    """``VERIFY`` on the release the chain published in ``work``."""
    env = {**env, "PIPELINE_CONFIG": str(BENCH / "bench.toml"), "RESULTS_DIR": str(work / "results")}
    proc = subprocess.run([sys.executable, "-c", VERIFY], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


DECISION = """
import json, sys, time, warnings
from types import SimpleNamespace
import pandas as pd
from etl import storage
from etl.data.contract import read_rows
from etl.data.scope import fit_scope
from etl.modeling.procedure import features_and_labels, make_pipeline, malignant_probability, predict_frame, score_rows
from etl.releases.reader import Release
csv, shipped, out = sys.argv[1], sys.argv[2], sys.argv[3]
train = pd.read_csv(shipped)
X, y = features_and_labels(train)
result = {}
for name in ("logistic_regression", "svm", "soft_vote"):
    fitted = make_pipeline(name, {}, 0).fit(X, y)
    release = Release(SimpleNamespace(name="bench"), {"model": {"threshold": 0.3, "malignant_threshold": 0.8},
                      "scope": fit_scope(train)}, fitted.named_steps["model"], fitted.named_steps["preprocess"], "")
    def plain():  # what etl.predict did before the call, the reasons and the scope
        rows = read_rows(csv)
        storage.write_frame(predict_frame(release.probabilities(rows), rows["id"].to_numpy(), 0.3), out)
    def full():  # etl.predict now: score_rows
        storage.write_frame(score_rows(release, read_rows(csv)), out)
    times = {}
    for label, call in (("plain", plain), ("full", full), ("plain", plain), ("full", full)):
        started = time.perf_counter(); call(); seconds = time.perf_counter() - started
        times[label] = min(times.get(label, seconds), seconds)
    result[name] = {"plain_seconds": times["plain"], "full_seconds": times["full"],
                    "full_over_plain": times["full"] / times["plain"]}
print(json.dumps(result))
"""


def decision_cost(csv: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """``DECISION``: scoring ``csv`` in-process with each shipped candidate fitted on the shipped data,
    plain probabilities (``etl.predict`` before the three-way call) vs ``score_rows`` (the call, the
    reasons, the scope check), reading the CSV and writing the predictions each time; the faster
    of two rounds."""
    proc = subprocess.run([sys.executable, "-c", DECISION, str(csv), str(SHIPPED), str(work / "decided.csv")],
                          env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def score_vs_predict(csv: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """The chain's published model on ``csv`` two ways: ``etl.predict`` (scoring alone) and
    ``etl.score --input`` (the scoring DAG's step: scoring, the drift check, its report)."""
    env = {**env, "PIPELINE_CONFIG": str(BENCH_CONFIG), "RESULTS_DIR": str(work / "results")}
    predict = measure([sys.executable, "-m", "etl.predict", "--input", str(csv), "--output",
                       str(work / "predicted.csv")], env)
    score = measure([sys.executable, "-m", "etl.score", "--input", str(csv)], env)
    return {"predict_seconds": predict["seconds"], "score_seconds": score["seconds"],
            "score_over_predict": score["seconds"] / predict["seconds"], "score_peak_bytes": score["peak_bytes"]}


def by_size(sizes: list[int], work: Path) -> dict[str, Any]:
    env = base_env(work)
    results = {}
    for rows in sizes:
        folder = work / f"rows-{rows}"
        folder.mkdir(parents=True, exist_ok=True)
        csv = SHIPPED if rows == 569 else folder / "data.csv"
        if rows != 569:
            wdbc_like(rows).to_csv(csv, index=False)
        log(f"{rows} rows: bare script, then the etl chain")
        bare = _bare(csv, folder / "bare", env)
        steps = chain(csv, folder, env)
        scoring = score_vs_predict(csv, folder, env)
        results[str(rows)] = {"rows": rows, "csv_bytes": csv.stat().st_size, "bare": bare, "chain": steps,
                              "chain_over_bare": steps["seconds"] / bare["seconds"], "scoring": scoring}
        if rows == 569:  # the shipped data's model: what every scoring run verifies and loads
            results[str(rows)]["verify"] = verification(folder, env)
        if rows == 200_000:
            results[str(rows)]["decision"] = decision_cost(csv, folder, env)
        log(f"{rows} rows: bare {bare['seconds']:.1f} s, chain {steps['seconds']:.1f} s "
            f"({steps['seconds'] / bare['seconds']:.1f}x), peak {steps['peak_bytes'] / GIB:.2f} GiB")
    return results


# -- the report ---------------------------------------------------------------------------------


def verdicts(r: dict[str, Any]) -> list[dict[str, Any]]:
    d = r["dags"]
    dag_overhead = d["dag_same_work"]["seconds"] - d["noop_dag"]["seconds"]
    out = [
        {"target": "DAG parse time", "limit": f"<= {TARGETS['parse_ms']} ms",
         "value": f"{d['parse']['median_ms']:.1f} ms", "met": d["parse"]["median_ms"] <= TARGETS["parse_ms"]},
        {"target": "`airflow dags test` minus the same-shape no-op DAG, vs the bare script (569 rows, same work)",
         "limit": f"<= {TARGETS['dag_over_bare']:.0f}x",
         "value": f"{dag_overhead:.1f} s vs {d['bare']['seconds']:.1f} s = {dag_overhead / d['bare']['seconds']:.1f}x",
         "met": dag_overhead <= TARGETS["dag_over_bare"] * d["bare"]["seconds"]},
    ]
    sched = r.get("scheduler")
    if sched:
        extra = sched["pipeline"]["seconds"] - sched["noop"]["seconds"]
        out.append({"target": "trigger to done through the scheduler, minus the same-shape no-op, vs the bare script",
                    "limit": f"<= {TARGETS['scheduler_over_bare']:.0f}x",
                    "value": f"{sched['pipeline']['seconds']:.1f} - {sched['noop']['seconds']:.1f} = {extra:.1f} s vs "
                             f"{d['bare']['seconds']:.1f} s = {extra / d['bare']['seconds']:.1f}x",
                    "met": extra <= TARGETS["scheduler_over_bare"] * d["bare"]["seconds"]})
    sizes = r["sizes"]
    if "verify" in sizes.get("569", {}):
        v = sizes["569"]["verify"]
        out.append({"target": "verifying the shipped model's release before a load (signature, every file)",
                    "limit": f"<= {TARGETS['verify_ms']} ms",
                    "value": f"{v['verify_ms']:.1f} ms ({v['files']} files, {v['bytes'] / 1024:.0f} KiB; "
                             f"with the skops load {v['load_ms']:.1f} ms)",
                    "met": v["verify_ms"] <= TARGETS["verify_ms"]})
    if "200000" in sizes:
        s = sizes["200000"]
        out += [
            {"target": "etl chain at 200k rows vs bare script", "limit": f"<= {TARGETS['chain_200k_over_bare']:.0f}x",
             "value": f"{s['chain']['seconds']:.1f} s vs {s['bare']['seconds']:.1f} s = {s['chain_over_bare']:.1f}x",
             "met": s["chain_over_bare"] <= TARGETS["chain_200k_over_bare"]},
            {"target": "etl chain at 200k rows, peak memory of a step",
             "limit": f"<= {TARGETS['chain_200k_peak_gib']} GiB",
             "value": f"{s['chain']['peak_bytes'] / GIB:.2f} GiB",
             "met": s["chain"]["peak_bytes"] <= TARGETS["chain_200k_peak_gib"] * GIB},
        ]
        if "scoring" in s:
            sc = s["scoring"]
            out.append({"target": "scoring 200k rows (`etl.score`, drift check included) vs `etl.predict`",
                        "limit": f"<= {TARGETS['score_200k_over_predict']}x",
                        "value": f"{sc['score_seconds']:.1f} s vs {sc['predict_seconds']:.1f} s = {sc['score_over_predict']:.1f}x",
                        "met": sc["score_over_predict"] <= TARGETS["score_200k_over_predict"]})
        for name, d in s.get("decision", {}).items():
            out.append({"target": f"scoring 200k rows with calls, reasons and the scope check vs plain probabilities ({name})",
                        "limit": f"<= {TARGETS['decision_200k_over_plain']:.0f}x",
                        "value": f"{d['full_seconds']:.1f} s vs {d['plain_seconds']:.1f} s = {d['full_over_plain']:.1f}x",
                        "met": d["full_over_plain"] <= TARGETS["decision_200k_over_plain"]})
        if "1000000" in sizes:
            ratio = sizes["1000000"]["chain"]["seconds"] / s["chain"]["seconds"]
            out.append({"target": "etl chain at 1M rows vs at 200k rows (linear: 5x the rows)",
                        "limit": f"<= {TARGETS['chain_1m_over_200k']:.0f}x",
                        "value": f"{sizes['1000000']['chain']['seconds']:.1f} s vs {s['chain']['seconds']:.1f} s = {ratio:.1f}x",
                        "met": ratio <= TARGETS["chain_1m_over_200k"]})
    return out


def _task_cells(runs: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """One row per task instance of any of ``runs`` (their ``tasks``), in the order of the run
    with the most instances, with each run's seconds for it ("-" where a run has no such instance)."""
    by_run = [{t["task"]: t["seconds"] for t in run["tasks"]} for run in runs]
    names: list[str] = []
    for run in sorted(runs, key=lambda r: -len(r["tasks"])):
        names += [t["task"] for t in run["tasks"] if t["task"] not in names]
    return [(name, [f"{seconds[name]:.2f}" if name in seconds else "-" for seconds in by_run]) for name in names]


def markdown(r: dict[str, Any]) -> str:
    d, m = r["dags"], r["machine"]
    lines = [f"Measured by `make bench` on {r['date']}: {m['cpus']} cores, Python {m['python']}, "
             f"Airflow {m['airflow']}, pandas {m['pandas']}, scikit-learn {m['sklearn']}"
             + (f"; {r['partial_update']}." if r.get("partial_update") else "."), "",
             "| Target | Limit | Measured | Met |", "|---|---|---|---|"]
    lines += [f"| {v['target']} | {v['limit']} | {v['value']} | {'yes' if v['met'] else '**no**'} |"
              for v in r["verdicts"]]
    bare = d["bare"]
    lines += ["", "Shipped data (569 rows), wall time:", "",
              "| Run | Wall | Sum of task durations | Peak memory |", "|---|---:|---:|---:|",
              f"| bare script (`bench/bare.py`, {bare.get('fits', '?')} fits: the same work as `bench/bench.toml`) | "
              f"{bare['seconds']:.1f} s | - | {bare['peak_bytes'] / 2**20:.0f} MiB |"]
    labels = {"noop_dag": "no-op DAG, the pipeline's shape with the same work's settings",
              "dag_same_work": "pipeline DAG, same work (`bench/bench.toml`)",
              "noop_dag_shipped": "no-op DAG, the pipeline's shape with the shipped settings",
              "dag_shipped_settings": "pipeline DAG, shipped settings"}
    for key, label in labels.items():
        if key not in d:
            continue
        run = d[key]
        walls = f" (runs: {', '.join(f'{w:.1f}' for w in run['walls'])})" if "walls" in run else ""
        lines.append(f"| {label}, {len(run['tasks'])} task instances | {run['seconds']:.1f} s{walls} | "
                     f"{run['task_seconds']:.1f} s | {run['peak_bytes'] / 2**20:.0f} MiB |")
    sched = r.get("scheduler")
    if sched:
        lines += ["", "Through the scheduler (`make airflow`: LocalExecutor, SQLite, the benchmark settings), from "
                  "the REST API's answer to the trigger to the run's end:", "",
                  "| Run | Trigger to done | Queued to start | Run (start to end) |", "|---|---:|---:|---:|"]
        for key, label in (("noop", "no-op DAG, same shape"), ("pipeline", "pipeline DAG")):
            run = sched[key]
            lines.append(f"| {label} | {run['seconds']:.1f} s | {run['queued_to_start']:.1f} s | {run['start_to_end']:.1f} s |")
        variants = {**sched.get("variants", {}), "stack": sched}
        if len(variants) > 1:
            lines += ["", "What the local stack's tuning bought (trigger to done; the pipeline's task instances' "
                      "durations summed):", "",
                      "| Stack | no-op DAG | pipeline DAG | pipeline minus no-op | task durations |",
                      "|---|---:|---:|---:|---:|"]
            for key, run in variants.items():
                lines.append(f"| {SCHEDULER_LABELS.get(key, key)} | {run['noop']['seconds']:.1f} s | "
                             f"{run['pipeline']['seconds']:.1f} s | "
                             f"{run['pipeline']['seconds'] - run['noop']['seconds']:.1f} s | "
                             f"{run['pipeline'].get('task_seconds', float('nan')):.1f} s |")
    columns = {"noop_dag": "no-op (same work)", "dag_same_work": "pipeline (same work)",
               "noop_dag_shipped": "no-op (shipped)", "dag_shipped_settings": "pipeline (shipped)"}
    runs = [d[k] for k in columns if k in d]
    titles = [v for k, v in columns.items() if k in d]
    if sched and "tasks" in sched["pipeline"]:
        default = sched.get("variants", {}).get("airflow_defaults", {}).get("pipeline")
        if default and "tasks" in default:
            runs.append(default)
            titles.append("pipeline (scheduler, Airflow's defaults)")
        runs.append(sched["pipeline"])
        titles.append("pipeline (scheduler, `make airflow`)")
    lines += ["", "Task durations (Airflow's task instances, seconds):", "",
              "| Task | " + " | ".join(titles) + " |", "|---|" + "---:|" * len(runs)]
    lines += [f"| {name} | {' | '.join(cells)} |" for name, cells in _task_cells(runs)]
    sizes = r["sizes"]
    if sizes:
        header = " | ".join(f"{int(k):,} rows" for k in sizes)
        lines += ["", "The etl chain, one process per step (`python -m etl.<step>`, `bench/bench.toml`): "
                  "wall seconds (peak memory, MiB)", "", f"| Step | {header} |", "|---|" + "---:|" * len(sizes)]
        for step in dict.fromkeys(step for s in sizes.values() for step in s["chain"]["steps"]):
            cells = " | ".join(f"{s['chain']['steps'][step]['seconds']:.1f} ({s['chain']['steps'][step]['peak_bytes'] / 2**20:.0f})"
                               if step in s["chain"]["steps"] else "-" for s in sizes.values())
            lines.append(f"| {step} | {cells} |")
        lines.append("| **chain total** | " + " | ".join(
            f"**{s['chain']['seconds']:.1f}** ({s['chain']['peak_bytes'] / 2**20:.0f})" for s in sizes.values()) + " |")
        lines.append("| bare script | " + " | ".join(
            f"{s['bare']['seconds']:.1f} ({s['bare']['peak_bytes'] / 2**20:.0f})" for s in sizes.values()) + " |")
        lines.append("| chain / bare | " + " | ".join(f"{s['chain_over_bare']:.1f}x" for s in sizes.values()) + " |")
        if all("scoring" in s for s in sizes.values()):
            lines.append("| `etl.predict` / `etl.score --input` | " + " | ".join(
                f"{s['scoring']['predict_seconds']:.1f} / {s['scoring']['score_seconds']:.1f}" for s in sizes.values()) + " |")
        lines.append("| CSV size | " + " | ".join(f"{s['csv_bytes'] / 2**20:.1f} MiB" for s in sizes.values()) + " |")
    return "\n".join(lines) + "\n"


def update_readme(table: str, marker: str = "bench") -> None:
    """Put ``table`` between docs/benchmark.md's ``<!-- {marker}:begin/end -->`` markers."""
    readme = PROJECT_ROOT / "docs" / "benchmark.md"
    text = readme.read_text()
    begin, end = f"<!-- {marker}:begin -->\n", f"<!-- {marker}:end -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        readme.write_text(head + begin + table + rest[rest.index(end):])


def _parts(work: Path, sizes: list[int]) -> dict[str, Callable[[], Any]]:
    """The benchmark's parts, in the order a whole run measures them (the scheduler's uses the
    DAG shape the first part wrote, or writes it when measured alone)."""
    shape = work / "dags" / "shape-same.json"

    def scheduler() -> dict[str, Any]:
        if not shape.exists():
            pipeline_shape({**base_env(work), "PIPELINE_CONFIG": str(BENCH_CONFIG)}, shape)
        return scheduler_runs(work / "scheduler", shape)

    return {"dags": lambda: shipped_data_runs(work / "dags"), "scheduler": scheduler,
            "sizes": lambda: by_size(sizes, work / "sizes")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="569,20000,200000,1000000")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--only", choices=("dags", "scheduler", "sizes"), default=None,
                        help="measure one part and print it (no tables written): for working on that part")
    parser.add_argument("--tables-only", action="store_true",
                        help="only rewrite bench/results.md and the table in docs/benchmark.md from bench/results.json")
    args = parser.parse_args(argv)
    if args.tables_only:
        result = json.loads((BENCH / "results.json").read_text())
        result["verdicts"] = verdicts(result)
        (BENCH / "results.md").write_text(markdown(result))
        update_readme(markdown(result))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-"))
    started = time.perf_counter()
    try:
        parts = {name: part() for name, part in _parts(work, sizes).items() if args.only in (None, name)}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.only:
        print(json.dumps(parts[args.only], indent=2))
        return 0
    from importlib import metadata

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "airflow": metadata.version("apache-airflow"), "pandas": pd.__version__,
                    "sklearn": metadata.version("scikit-learn")},
        "targets": TARGETS,
        **parts,
    }
    result["verdicts"] = verdicts(result)
    result["seconds"] = time.perf_counter() - started
    (BENCH / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (BENCH / "results.md").write_text(table)
    update_readme(table)
    print(table)
    log(f"wrote bench/results.json, bench/results.md and the table in docs/benchmark.md in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
