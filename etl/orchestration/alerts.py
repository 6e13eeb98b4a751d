"""Failure (and optional success) alerts, through Airflow notifiers: an e-mail
(``SmtpNotifier``, provider ``apache-airflow-providers-smtp``) and a Slack-compatible webhook,
a JSON ``{"text": ...}`` POST (``HttpNotifier``, provider ``apache-airflow-providers-http``).

Off until configured in ``[alerts]`` of ``pipeline.toml``: ``email_to`` (addresses; the SMTP
server, login and sender come from the Airflow connection ``smtp_conn_id``) and/or
``webhook_conn_id`` (an Airflow HTTP connection whose host is the webhook URL, so the URL's
secret stays in the connection). The message names the DAG, the task, the run, the error's
first line and the task's log URL.

Imported when the DAG file is parsed: the providers are imported only when an alert is sent.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from etl.catalog import first_line
from etl.settings import Settings, load_settings

logger = logging.getLogger(__name__)


def message(context: dict[str, Any], state: str) -> tuple[str, str]:
    """The subject and the plain-text body of an alert about a task or a run."""
    ti, dag_run = context.get("ti"), context.get("dag_run")
    dag_id = getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", "?")
    run_id = context.get("run_id") or getattr(dag_run, "run_id", "?")
    task_id = getattr(ti, "task_id", None)
    what = f"task {task_id} of DAG {dag_id}" if task_id else f"DAG {dag_id}"
    subject = f"[Airflow] {what} {state} (run {run_id})"
    lines = [f"DAG: {dag_id}", f"Run: {run_id}"]
    if getattr(dag_run, "logical_date", None):
        lines.append(f"Logical date: {dag_run.logical_date.isoformat()}")
    if task_id:
        lines += [f"Task: {task_id} (try {getattr(ti, 'try_number', '?')})"]
    lines.append(f"State: {state}")
    error = first_line(context.get("exception") or context.get("reason"))
    if error:
        lines.append(f"Error: {error}")
    log_url = getattr(ti, "log_url", None)
    if log_url:
        lines.append(f"Log: {log_url}")
    return subject, "\n".join(lines)


def notifiers(settings: Settings, subject: str, body: str) -> list[Any]:
    """The configured notifiers, with the message already written (no templates rendered)."""
    found: list[Any] = []
    if settings.alerts.email_to:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        found.append(SmtpNotifier(
            to=list(settings.alerts.email_to), subject=subject, smtp_conn_id=settings.alerts.smtp_conn_id,
            html_content=f"<pre>{html.escape(body)}</pre>",
        ))
    if settings.alerts.webhook_conn_id:
        from airflow.providers.http.notifications.http import HttpNotifier

        found.append(HttpNotifier(
            http_conn_id=settings.alerts.webhook_conn_id, endpoint="",
            json={"text": f"{subject}\n{body}"},
        ))
    return found


def send(context: dict[str, Any], state: str, settings: Settings | None = None) -> int:
    """Send an alert through every configured notifier; return how many sent it.

    A notifier that fails is logged and skipped: an alert problem never hides the task's own
    outcome.
    """
    subject, body = message(context, state)
    return send_message(context, subject, body, settings)


def send_message(context: dict[str, Any], subject: str, body: str, settings: Settings | None = None) -> int:
    """Send ``subject`` and ``body`` through every configured notifier (``send``'s channels and
    error handling); return how many sent it."""
    settings = settings or load_settings()
    sent = 0
    for notifier in notifiers(settings, subject, body):
        try:
            notifier.notify(context)  # not notifier(context): the text is not a template
            sent += 1
        except Exception as exc:
            logger.error("alert through %s failed: %s", type(notifier).__name__, first_line(exc))
    if sent:
        logger.info("alert sent through %d channel(s): %s", sent, subject)
    return sent


def on_task_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of every task: runs once a task has failed for good."""
    send(context, "failed")


def on_run_success(context: dict[str, Any]) -> None:
    """``on_success_callback`` of the DAG, when ``[alerts] on_success`` is true."""
    send(context, "succeeded")
