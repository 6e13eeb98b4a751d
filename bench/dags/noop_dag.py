"""Airflow's own fixed cost for the benchmark: the pipeline DAG's exact shape, every task a no-op.

The shape is the pipeline DAG's own, as ``bench/run.py`` reads it from ``dags/pipeline_dag.py``
with the benchmark's settings (``pipeline_shape``) into the JSON file ``$NOOP_SHAPE``: the same
task ids, the same dependencies, the same mapped tasks over the same map indexes (named in the UI
by the same templates). So it follows
the pipeline when a task or a candidate is added.
"""

import json
import os
from datetime import UTC, datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def noop(**_) -> None:
    """Do nothing."""


shape = json.loads(open(os.environ["NOOP_SHAPE"]).read()) if os.environ.get("NOOP_SHAPE") else {"tasks": []}
with DAG("bench_noop", schedule=None, start_date=datetime(2020, 1, 1, tzinfo=UTC), catchup=False):
    made = {}
    for task in shape["tasks"]:
        if task["op_kwargs"] is not None:  # a mapped task: the pipeline's instances
            made[task["task_id"]] = PythonOperator.partial(
                task_id=task["task_id"], python_callable=noop, map_index_template=task.get("map_index_template"),
            ).expand(op_kwargs=task["op_kwargs"])
        else:
            made[task["task_id"]] = PythonOperator(task_id=task["task_id"], python_callable=noop)
    for task in shape["tasks"]:
        for upstream in task["upstream"]:
            made[upstream] >> made[task["task_id"]]
