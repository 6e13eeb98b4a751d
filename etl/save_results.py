"""Publish a finished, evaluated run if it clears the quality gate; prune old runs.

The step's work is in the modules every reader of releases shares: ``etl.releases.registry`` says
whether the run's recorded gate decision (``gate.json``, made once by ``quality_gate``) still
lets it be published, and publishes all or nothing (and documents the results folder's
layout); ``etl.releases.retention`` prunes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from etl import runner, storage
from etl.catalog import Skipped, StepInputs
from etl.releases.registry import publish, publishable
from etl.releases.retention import prune
from etl.runner import Outputs, Run, Step
from etl.settings import ReleaseSettings
from etl.storage import Location

logger = logging.getLogger(__name__)


def approval_refusal(signoff: Mapping[str, Any] | None) -> str | None:
    """Why a release that needs a person's approval may not be published, or None when
    ``signoff`` (``signoff.json``, ``etl.orchestration.approval``) approves it."""
    if signoff is None:
        return ('[release] approval = "required" and nobody has approved this run (approve_release '
                "records the answer)")
    if signoff.get("decision") != "approved":
        return f"not approved: the sign-off says {signoff.get('decision')!r}"
    return None


def save_results(
    inputs: StepInputs,
    record_path: Location,
    results_dir: Location,
    run_info: Mapping[str, Any],
    keep_runs: int,
    prune_min_age: timedelta,
    approval_required: bool,
    release_settings: ReleaseSettings | None = None,
) -> dict[str, Any]:
    """Publish the run if its quality gate decision (``inputs.gate``) allows it and, with
    ``approval_required``, a person approved it (``inputs.signoff``); then prune old runs and
    releases; record what was done at ``record_path`` (``release.json``). The release gets its
    model card, with the sign-off (``etl.releases.model_card``), and is signed with
    ``release_settings``' key (default: the configured ``[release]``).

    The decision is the ``quality_gate`` step's, made once: when it refused the model, or when
    it compared with a release that another run has replaced since, nothing is published, and
    the reason is logged and recorded.

    Returns:
        what ``publish`` returns, or ``{"published": False, "reason": ...}``.
    """
    from etl.releases import model_card

    verdict = storage.read_json(inputs.gate)
    signoff = storage.read_json(inputs.signoff) if inputs.signoff is not None else None
    reason = publishable(verdict, inputs.run_key, results_dir)
    if reason is None and approval_required:
        reason = approval_refusal(signoff)
    if reason is not None:
        logger.warning("%s; the published model stays %s", reason, verdict["published_release"])
        storage.write_json({"published": False, "reason": reason}, record_path)
        return {"published": False, "reason": reason}
    published = publish(inputs, results_dir, run_info, signoff if approval_required else model_card.AUTO,
                        release_settings)
    storage.write_json({"release": storage.location(published["release"]).name, "published": True}, record_path)
    prune(results_dir, keep_runs, prune_min_age,
          protect=(inputs.run_key, storage.location(published["release"]).name))
    return published


def _save_results(run: Run) -> Outputs:
    """``save_results`` with ``[retention]``, then the run in MLflow when tracking is on
    (``etl.releases.tracking``: what it did or why it could not, in ``release.json``);
    ``Skipped`` when nothing was published."""
    from etl.releases import tracking

    r = run.settings.retention
    outcome = save_results(run.inputs("save_results"), run.folder.release_record, run.settings.results_dir, run.info,
                           r.keep_runs, timedelta(hours=r.prune_min_age_hours), run.settings.release.required,
                           run.settings.release)
    tracked = tracking.track(run, outcome)
    if tracked is not None:
        storage.write_json({**storage.read_json(run.folder.release_record), "mlflow": tracked}, run.folder.release_record)
    if not outcome.get("published", True):
        raise Skipped(outcome["reason"])
    return outcome


STEPS = runner.steps(Step("save_results", _save_results))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
