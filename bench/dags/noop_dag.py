"""Airflow's own fixed cost for the benchmark: the pipeline DAG's shape (9 tasks, one mapped
over ``$NOOP_MAPPED`` candidates: 8 + that many task instances), every task a no-op."""

import os
from datetime import datetime, timezone

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, chain


def noop(**_) -> None:
    """Do nothing."""


with DAG("bench_noop", schedule=None, start_date=datetime(2020, 1, 1, tzinfo=timezone.utc), catchup=False):
    tasks = [PythonOperator(task_id=name, python_callable=noop)
             for name in ("ensure_results_dir", "load_data", "preprocess_data")]
    tasks.append(PythonOperator.partial(task_id="train_model", python_callable=noop)
                 .expand(op_kwargs=[{"candidate": str(i)} for i in range(int(os.environ.get("NOOP_MAPPED", "4")))]))
    tasks += [PythonOperator(task_id=name, python_callable=noop)
              for name in ("select_model", "evaluate_model", "make_report", "save_results", "upload_results")]
    chain(*tasks)
