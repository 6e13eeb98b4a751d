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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCH = PROJECT_ROOT / "bench"
SHIPPED = PROJECT_ROOT / "data" / "wdbc.csv"
DAG_ID = "breast_cancer_etl_pipeline"
STEPS = ("load_data", "preprocess_data", "train_model", "evaluate_model", "report", "save_results",
         "upload_results")
TARGETS = {"parse_ms": 30, "dag_over_bare": 2.0, "chain_200k_over_bare": 3.0, "chain_200k_peak_gib": 1.5,
           "chain_1m_over_200k": 5.0}
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
    same = {**env, "PIPELINE_CONFIG": str(BENCH / "bench.toml")}
    noop_env = {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(BENCH / "dags")}
    log("no-op DAG (9 task instances), then the pipeline DAG with the same work; median of 3 each")
    dates = ["2024-01-01", "2024-01-02", "2024-01-03"]
    noop = median_run({**noop_env, "NOOP_MAPPED": "1"}, "bench_noop", dates)
    same_work = median_run({**same, "RESULTS_DIR": str(work / "results-dag")}, DAG_ID, dates)
    log("no-op DAG (12 task instances), then the pipeline DAG with the shipped settings")
    noop_12 = dag_run({**noop_env, "NOOP_MAPPED": "4"}, "bench_noop", "2024-01-04")
    shipped = dag_run({**env, "RESULTS_DIR": str(work / "results-dag-shipped")}, DAG_ID, "2024-01-04")
    return {"parse": parse, "bare": bare, "noop_dag": noop, "dag_same_work": same_work,
            "noop_dag_12": noop_12, "dag_shipped_settings": shipped}


def _bare(csv: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    result = measure([sys.executable, str(BENCH / "bare.py"), str(csv), str(out)], env)
    inner = json.loads(result["output"].strip().splitlines()[-1])
    return {"seconds": result["seconds"], "peak_bytes": result["peak_bytes"],
            "in_process_seconds": inner["seconds"], "roc_auc": inner["roc_auc"]}


# -- 3. the etl chain by size -------------------------------------------------------------------


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
        results[str(rows)] = {"rows": rows, "csv_bytes": csv.stat().st_size, "bare": bare, "chain": steps,
                              "chain_over_bare": steps["seconds"] / bare["seconds"]}
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
        {"target": "DAG run - no-op DAG, vs bare script (569 rows, same work)",
         "limit": f"<= {TARGETS['dag_over_bare']:.0f}x",
         "value": f"{dag_overhead:.1f} s vs {d['bare']['seconds']:.1f} s = {dag_overhead / d['bare']['seconds']:.1f}x",
         "met": dag_overhead <= TARGETS["dag_over_bare"] * d["bare"]["seconds"]},
    ]
    sizes = r["sizes"]
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
        if "1000000" in sizes:
            ratio = sizes["1000000"]["chain"]["seconds"] / s["chain"]["seconds"]
            out.append({"target": "etl chain at 1M rows vs at 200k rows (linear: 5x the rows)",
                        "limit": f"<= {TARGETS['chain_1m_over_200k']:.0f}x",
                        "value": f"{sizes['1000000']['chain']['seconds']:.1f} s vs {s['chain']['seconds']:.1f} s = {ratio:.1f}x",
                        "met": ratio <= TARGETS["chain_1m_over_200k"]})
    return out


def markdown(r: dict[str, Any]) -> str:
    d, m = r["dags"], r["machine"]
    lines = [f"Measured by `make bench` on {r['date']}: {m['cpus']} cores, Python {m['python']}, "
             f"Airflow {m['airflow']}, pandas {m['pandas']}, scikit-learn {m['sklearn']}.", "",
             "| Target | Limit | Measured | Met |", "|---|---|---|---|"]
    lines += [f"| {v['target']} | {v['limit']} | {v['value']} | {'yes' if v['met'] else '**no**'} |"
              for v in r["verdicts"]]
    lines += ["", "Shipped data (569 rows), wall time:", "",
              "| Run | Wall | Sum of task durations | Peak memory |", "|---|---:|---:|---:|",
              f"| bare script (`bench/bare.py`) | {d['bare']['seconds']:.1f} s | - | {d['bare']['peak_bytes'] / 2**20:.0f} MiB |"]
    for key, label in (("noop_dag", "no-op DAG, 9 task instances"), ("dag_same_work", "pipeline DAG, same work (`bench/bench.toml`)"),
                       ("noop_dag_12", "no-op DAG, 12 task instances"), ("dag_shipped_settings", "pipeline DAG, shipped settings (4 candidates)")):
        run = d[key]
        walls = f" (runs: {', '.join(f'{w:.1f}' for w in run['walls'])})" if "walls" in run else ""
        lines.append(f"| {label} | {run['seconds']:.1f} s{walls} | {run['task_seconds']:.1f} s | {run['peak_bytes'] / 2**20:.0f} MiB |")
    lines += ["", "Task durations (Airflow's task instances, seconds): the no-op DAG and the pipeline DAG "
              "with the same work (median runs), the pipeline DAG with the shipped settings:", "",
              "| Task | no-op | same work | shipped settings |", "|---|---:|---:|---:|"]
    noop_tasks = {t["task"].split("[")[0]: t["seconds"] for t in d["noop_dag"]["tasks"]}
    same_tasks = {t["task"].split("[")[0]: t["seconds"] for t in d["dag_same_work"]["tasks"]}
    for t in d["dag_shipped_settings"]["tasks"]:
        name = t["task"].split("[")[0]
        first = name != "train_model" or t["task"].endswith("[logistic_regression]")
        noop_cell, same_cell = (f"{noop_tasks[name]:.2f}", f"{same_tasks[name]:.2f}") if first else ("-", "-")
        lines.append(f"| {t['task']} | {noop_cell} | {same_cell} | {t['seconds']:.2f} |")
    sizes = r["sizes"]
    if sizes:
        header = " | ".join(f"{int(k):,} rows" for k in sizes)
        lines += ["", "The etl chain, one process per step (`python -m etl.<step>`, `bench/bench.toml`): "
                  "wall seconds (peak memory, MiB)", "", f"| Step | {header} |", "|---|" + "---:|" * len(sizes)]
        for step in STEPS:
            cells = " | ".join(f"{s['chain']['steps'][step]['seconds']:.1f} ({s['chain']['steps'][step]['peak_bytes'] / 2**20:.0f})"
                               for s in sizes.values())
            lines.append(f"| {step} | {cells} |")
        lines.append("| **chain total** | " + " | ".join(
            f"**{s['chain']['seconds']:.1f}** ({s['chain']['peak_bytes'] / 2**20:.0f})" for s in sizes.values()) + " |")
        lines.append("| bare script | " + " | ".join(
            f"{s['bare']['seconds']:.1f} ({s['bare']['peak_bytes'] / 2**20:.0f})" for s in sizes.values()) + " |")
        lines.append("| chain / bare | " + " | ".join(f"{s['chain_over_bare']:.1f}x" for s in sizes.values()) + " |")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="569,20000,200000,1000000")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
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
        from importlib import metadata

        result: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "airflow": metadata.version("apache-airflow"), "pandas": pd.__version__,
                        "sklearn": metadata.version("scikit-learn")},
            "targets": TARGETS,
            "dags": shipped_data_runs(work / "dags"),
            "sizes": by_size(sizes, work / "sizes"),
        }
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
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
