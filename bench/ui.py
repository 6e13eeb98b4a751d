"""The UI plugin's benchmark (``make bench-ui``, part of ``make bench``): how fast the Model page,
the runs API and a Report tab answer with 200 runs in the results folder.

One real run is made on the shipped data (the etl step cores, ``bench/bench.toml`` settings) and
published, then copied to 200 run folders (each with its own ``run.json`` and metrics) and 20
releases. The app (``etl.ui.app``) answers in-process with Airflow's auth manager and a real token
(the check reads the metadata database, as in the api-server), so the time includes the auth
check, reading every run's files and rendering. Median and 95th percentile of 30 requests each,
written to ``bench/ui-results.json`` and into docs/benchmark.md (``ui-bench`` markers).

Target (the 2-core machine): the Model page answers in under 300 ms at the median.

Usage: python bench/ui.py [--runs 200] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300
REQUESTS = 30


def log(message: str) -> None:
    print(f"[bench-ui {time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_results(root: Path, runs: int) -> None:
    """One real published run, copied to ``runs`` run folders and 20 releases."""
    from dataclasses import replace

    from etl.orchestration import pipeline
    from etl.settings import load_settings
    from etl.storage import read_json, write_json
    from etl.storage.layout import ResultsPaths, RunPaths

    settings = load_settings()
    settings = replace(settings, paths=replace(settings.paths, results_dir=str(root)),
                       nested_cv=replace(settings.nested_cv, outer_folds=0))
    layout = ResultsPaths(root)
    run = RunPaths(layout.runs / "2026-01-01T000000Z")
    pipeline.run_tasks(pipeline.Run.of_folder(settings, run, {"random_state": 42},
                                        {"dag_id": "breast_cancer_etl_pipeline", "run_id": "bench__0"}),
                    [task for task in pipeline.catalog.TASKS if task != "upload_results"])
    (release,) = list(layout.releases.iterdir())
    metrics = read_json(run.metrics)
    for i in range(1, runs):
        key = f"2026-01-01T{i // 60:02d}{i % 60:02d}00Z"
        copy = RunPaths(layout.runs / key)
        shutil.copytree(run.root, copy.root)
        write_json({"dag_id": "breast_cancer_etl_pipeline", "run_id": f"bench__{i}", "logical_date": None,
                    "started_at": f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00+00:00"}, copy.run_record)
        write_json({**metrics, "recall": metrics["recall"] - (i % 7) * 0.003}, copy.metrics)
        if i % 10 == 0:
            name = f"{key}-{release.name.rsplit('-', 1)[1]}"
            shutil.copytree(release, layout.releases / name)
            write_json({"published": True, "release": name}, copy.release_record)


def timed(client, path: str) -> dict[str, float]:
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))],
            "bytes": len(response.content)}


def measure(results: Path, runs: int) -> dict:
    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", uuid.uuid4().hex * 2)
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from etl.ui.app import create_app

    client = TestClient(create_app(results))
    client.headers["Authorization"] = "Bearer " + init_auth_manager().generate_jwt(
        SimpleAuthManagerUser(username="bench", role="admin"))
    client.get("/model")  # the first request sets things up (settings, imports)
    return {
        "runs": runs,
        "model_page": timed(client, "/model"),
        "runs_api": timed(client, "/api/runs"),
        "report_tab": timed(client, "/runs/bench__150/report"),
        "releases_api": timed(client, "/api/releases"),
    }


def markdown(r: dict) -> str:
    rows = [("Model page", "model_page"), ("`api/runs`", "runs_api"), ("`api/releases`", "releases_api"),
            ("Report tab (one run)", "report_tab")]
    lines = [f"With {r['runs']} runs in the results folder; {REQUESTS} requests each, in-process with the "
             "auth check:\n", "| endpoint | median | 95th percentile | size |", "|---|---|---|---|"]
    for label, key in rows:
        m = r[key]
        lines.append(f"| {label} | {m['median_ms']:.0f} ms | {m['p95_ms']:.0f} ms | {m['bytes'] / 1024:.0f} KiB |")
    verdict = "met" if r["model_page"]["median_ms"] < TARGET_MS else "NOT met"
    lines.append(f"\nTarget: the Model page under {TARGET_MS} ms: **{verdict}**.\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ui-"))
    if os.environ.get("BENCH_UI_CHILD") != "1":  # a clean environment: own Airflow home and settings
        env = {**os.environ, "BENCH_UI_CHILD": "1", "AIRFLOW_HOME": str(work / "airflow"),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "RESULTS_DIR": str(work / "results"),
               "PIPELINE_CONFIG": str(PROJECT_ROOT / "bench" / "bench.toml")}
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        try:
            return subprocess.run([sys.executable, __file__, "--runs", str(args.runs), "--work", str(work)],
                                  env=env, check=False).returncode
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
    log(f"making {args.runs} runs in {work / 'results'}")
    make_results(work / "results", args.runs)
    log("timing the endpoints")
    result = measure(work / "results", args.runs)
    (PROJECT_ROOT / "bench" / "ui-results.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    from run import update_readme

    update_readme(table, marker="ui-bench")
    print(table)
    return 0 if result["model_page"]["median_ms"] < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
