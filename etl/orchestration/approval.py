"""Release sign-off: a person approves or rejects a release in the Airflow UI before it is
published (``[release] approval = "required"``).

``ReleaseApproval`` is the standard provider's ``ApprovalOperator`` (Airflow's human-in-the-loop
operators, 3.1+) as the DAG's ``approve_release`` task, between ``make_report`` and
``save_results``:

- it asks only when the quality gate let the model through (a refused model is never put in
  front of a person: it records ``not_asked`` and ``save_results`` records the gate's refusal);
- the request (Browse > Required Actions, or ``GET /api/v2/hitlDetails``) shows the model
  card's summary and links to the run's report and card, and ``[alerts]`` (when configured)
  tells the approvers it is waiting; only the users in ``[release] approvers`` may answer (the
  operator's assigned users: Airflow refuses anyone else, 403);
- on Airflow 3.3 the task waits in the ``awaiting_input`` state, holding no worker slot;
- *Approve*: ``signoff.json`` records who, when and their comment; ``save_results`` publishes,
  and the release's manifest and model card carry the sign-off;
- *Reject*: recorded the same way; the operator skips ``save_results`` and ``upload_results``;
  nothing published changes; the run's Report tab says who rejected it and why;
- no answer within ``[release] approval_timeout``: recorded (``timed_out``), the task fails
  with one line (no retry), so nothing is published and ``[alerts]`` announces it.

The record is the catalog's ``signoff`` file (``etl.catalog``); ``etl.releases.model_card`` documents
its fields. Imported by the DAG file only when approval is required.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.exceptions import HITLTimeoutError
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from etl import catalog, storage
from etl.catalog import UI_URL_PREFIX, first_line
from etl.settings import Settings
from etl.storage.layout import RunPaths

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(folder: RunPaths, **fields: Any) -> dict[str, Any]:
    """Write the run's sign-off record (``signoff.json``) and return it."""
    signoff = {"task": catalog.APPROVAL_TASK, **fields}
    storage.write_json(signoff, folder.signoff)
    return signoff


def answer_record(event: dict[str, Any], approve: str) -> dict[str, Any]:
    """The sign-off record of an answer (the HITL resume event: ``chosen_options``,
    ``responded_by_user``, ``responded_at``, ``params_input``)."""
    at = event.get("responded_at")
    return {
        "decision": "approved" if event["chosen_options"][0] == approve else "rejected",
        "by": event.get("responded_by_user"),
        "at": at.isoformat(timespec="seconds") if isinstance(at, datetime) else at,
        "comment": str((event.get("params_input") or {}).get("comment") or ""),
    }


def _links(context: dict[str, Any], run_key: str) -> str:
    """Markdown links to the run's report and model card (the project's UI plugin)."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    root = f"{base}{UI_URL_PREFIX}/runs/{run_key}"
    return f"[The run's report]({root}/report) · [The model card]({root}/model_card)"


class ReleaseApproval(ApprovalOperator):
    """``approve_release``: ask a person to approve the run's release (module docstring)."""

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        release = settings.release
        kwargs.pop("params", None)  # the DAG's run parameters: not questions for the approver
        super().__init__(
            task_id=catalog.APPROVAL_TASK,
            subject="Publish the breast tumour model of run {{ run_id }}?",
            body="(the model card's summary is written here when the task starts)",
            assigned_users=[{"id": user, "name": user} for user in release.approvers],
            response_timeout=release.approval_timeout,
            params={"comment": Param("", type="string", title="Comment",
                                     description="Why: recorded in the release's manifest and model card")},
            retries=0,  # a timed-out or rejected sign-off is an answer, not an I/O error
            doc_md=__doc__,
            **kwargs,
        )
        self.approvers = list(release.approvers)

    def _run(self, context: dict[str, Any]) -> tuple[Settings, RunPaths]:
        from etl.orchestration.tasks import run_folder, run_settings

        settings = run_settings(context)
        return settings, run_folder(context, settings)

    def execute(self, context: dict[str, Any]) -> Any:
        from etl.releases import model_card
        from etl.releases.registry import publishable
        from etl.runner import resolve_inputs

        settings, folder = self._run(context)
        inputs = resolve_inputs(catalog.APPROVAL_TASK, folder, settings.nested_cv.count)
        metrics, gate = storage.read_json(inputs.metrics), storage.read_json(inputs.gate)
        reason = publishable(gate, folder.root.name, settings.results_dir)
        if reason is not None:  # save_results records the refusal; a person is not asked
            logger.info("not asking for approval: %s", reason)
            record(folder, decision="not_asked", reason=reason, at=_now())
            return None
        self.body = (model_card.summary(metrics, gate) + "\n\n" + _links(context, folder.root.name)
                     + "\n\nApprove publishes this release; Reject keeps the published one. "
                       "Your answer, your name and your comment go into the release's record.")
        record(folder, decision="pending", approvers=self.approvers, asked_at=_now(),
               timeout=str(self.response_timeout))
        logger.info("asking %s to approve the release of run %s", ", ".join(self.approvers) or "anyone",
                    folder.root.name)
        self._announce(context, settings, folder.root.name)
        return super().execute(context)

    def _announce(self, context: dict[str, Any], settings: Settings, run_key: str) -> None:
        """Tell the approvers through ``[alerts]`` (when configured) that a release waits for them."""
        from etl.orchestration import alerts

        alerts.send_message(
            context, f"[Airflow] sign-off requested: the release of run {context.get('run_id') or run_key}",
            f"Approvers: {', '.join(self.approvers) or 'anyone'}\nAnswer within {self.response_timeout}: "
            f"Browse > Required Actions in the Airflow UI, or the REST API.\n\n{self.body}", settings)

    def execute_complete(self, context: dict[str, Any], event: dict[str, Any]) -> Any:
        _, folder = self._run(context)
        if "error" in event:
            try:
                self.process_trigger_event_error(event)
            except HITLTimeoutError:
                record(folder, decision="timed_out", at=_now(), timeout=str(self.response_timeout))
                raise AirflowFailException(
                    f"no answer within {self.response_timeout} from {', '.join(self.approvers) or 'anyone'}: "
                    "nothing published (trigger a new run to ask again)") from None
        self.validate_chosen_options(event["chosen_options"])
        signoff = record(folder, **answer_record(event, self.APPROVE))
        who = (signoff["by"] or {}).get("name") or "?"
        logger.info("%s by %s: %s", signoff["decision"], who, first_line(signoff["comment"]) or "(no comment)")
        return super().execute_complete(context, event)
