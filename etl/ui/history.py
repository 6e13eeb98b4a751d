"""What the results folder says about each run and release, for people: read-only summaries
behind the Airflow UI views (``etl.ui.app``) and the JSON API scripts call.

Everything comes from the files the steps write (``etl.storage.layout.RunPaths`` and
``ReleasePaths``), through ``etl.storage``, so it reads a local results folder and an
``s3://`` results root alike. A missing or unreadable file leaves its part of a summary empty:
a run in progress, a failed run or a run from before a file existed is still listed.

Names from outside (a run id in a URL) are only ever matched against the folders listed under
the results root (``find_run``, ``find_release``), never joined onto a path, so no request can
read outside the results root.
"""

from __future__ import annotations

import logging
from typing import Any

from etl import storage
from etl.catalog import PipelineError
from etl.releases.reader import current_release
from etl.releases.wording import expected_line, guarantee_line
from etl.storage.layout import ReleasePaths, ResultsPaths, run_key

logger = logging.getLogger(__name__)

#: The headline metrics: (label, key in metrics.json and its ``ci95``), in the order shown.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("sensitivity", "recall"),
    ("specificity", "specificity"),
    ("roc_auc", "roc_auc"),
)


def _read(path: storage.Location) -> Any | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return storage.read_json(path)
    except (FileNotFoundError, ValueError):  # (MissingInputError is a FileNotFoundError)
        return None
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return None


def headline(metrics: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The headline metrics at the run's decision threshold, each with its 95 % interval and the
    interval's method (test split; see ``etl.evaluate_model``)."""
    if not metrics:
        return {}
    found = {}
    for label, key in HEADLINE:
        if key in metrics:
            found[label] = {
                "value": metrics[key],
                "ci95": (metrics.get("ci95") or {}).get(key),
                "method": (metrics.get("ci_method") or {}).get(key),
            }
    return found


def expected(metrics: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The nested cross-validation estimate of the whole procedure for the headline metrics,
    when the run has one: mean and SD over the outer folds, and for sensitivity and specificity
    the pooled value over every row scored with its exact 95 % interval (``pooled``, ``ci95``)."""
    found = (metrics or {}).get("expected_performance") or {}
    scores, pooled = found.get("scores") or {}, found.get("pooled") or {}
    out: dict[str, dict[str, Any]] = {label: dict(scores[key]) for label, key in HEADLINE if key in scores}
    for label in ("sensitivity", "specificity"):
        if label in pooled and label in out:
            out[label].update(pooled=pooled[label], ci95=pooled[f"{label}_ci95"])
    return out


def signer(signoff: Any) -> str:
    """Who answered a sign-off request (``etl.releases.model_card``'s record), or ``?``."""
    by = (signoff or {}).get("by") or {}
    return str(by.get("name") or by.get("id") or "?")


def _state(metrics: Any, release: Any, failures: list[dict[str, Any]], signoff: Any = None) -> tuple[str, str]:
    """A run's state and its one-line reason."""
    if failures:
        first = failures[0]
        return "failed", f"{first['task_id']}: {first['error']}"
    if release is not None:
        if release.get("published"):
            return "published", f"published as {release['release']}"
        return "refused", release.get("reason", "refused by the quality gate")
    decision = (signoff or {}).get("decision")
    if decision == "rejected":
        comment = f": {signoff['comment']}" if signoff.get("comment") else " (no comment)"
        return "rejected", f"rejected by {signer(signoff)} at {signoff.get('at')}{comment}; nothing published"
    if decision == "pending":
        return "awaiting sign-off", ("awaiting sign-off by " + (", ".join(signoff.get("approvers") or []) or "anyone")
                                     + f" (asked at {signoff.get('asked_at')})")
    if metrics is not None:
        return "evaluated", "evaluated; not saved yet (running, or stopped before save_results)"
    return "running", "no results yet (running, or stopped early)"


def run_summary(layout: ResultsPaths, key: str) -> dict[str, Any]:
    """What one run found: its Airflow identity, state, headline metrics with intervals, the
    quality gate's decision, the release it published, the tasks that failed."""
    run = layout.run(key)
    record = _read(run.run_record) or {}
    metrics = _read(run.metrics)
    gate = _read(run.gate)
    release = _read(run.release_record)
    failures = [f for f in (_read(p) for p in storage.list_files(run.failures, ".json")) if f]
    failures.sort(key=lambda f: f.get("at") or "")
    signoff = _read(run.signoff)
    state, reason = _state(metrics, release, failures, signoff)
    decision = None
    if gate is not None:
        decision = {
            "passed": gate.get("passed"),
            "published_release": gate.get("published_release"),
            "failed_checks": [c for c in gate.get("checks", []) if not c.get("passed")],
            "checks": [{k: c.get(k) for k in ("check", "value", "limit", "passed")} for c in gate.get("checks", [])],
        }
    return {
        "key": key,
        "dag_id": record.get("dag_id"),
        "run_id": record.get("run_id"),
        "logical_date": record.get("logical_date"),
        "started_at": record.get("started_at"),
        "state": state,
        "reason": reason,
        "release": release.get("release") if release and release.get("published") else None,
        "model": (metrics or {}).get("model"),
        "threshold": (metrics or {}).get("threshold"),
        "n_test": (metrics or {}).get("n_test"),
        "headline": headline(metrics),
        "expected": expected(metrics),
        "gate": decision,
        "failures": failures,
        "signoff": signoff,
        "has_report": storage.exists(run.report),
        "has_card": storage.exists(run.model_card),
    }


def _order(summary: dict[str, Any]) -> tuple[str, str]:
    return summary.get("started_at") or summary.get("published_at") or "", summary.get("key") or summary["name"]


def list_runs(layout: ResultsPaths) -> list[dict[str, Any]]:
    """Every run folder's summary, newest first."""
    return sorted((run_summary(layout, key) for key in storage.list_folders(layout.runs)), key=_order, reverse=True)


def current_name(layout: ResultsPaths) -> str | None:
    """The name of the published release, or None when nothing is published."""
    try:
        return current_release(layout.root).name
    except (FileNotFoundError, KeyError, ValueError):
        return None


def release_summary(layout: ResultsPaths, name: str, current: str | None) -> dict[str, Any]:
    """One release: the run that made it, when, its model and threshold, its headline metrics."""
    release = layout.release(name)
    manifest = _read(release.manifest) or {}
    metrics = _read(release.metrics)
    run = manifest.get("run") or {}
    return {
        "name": name,
        "current": name == current,
        "run_key": run.get("run_key") or release.run_key,
        "run_id": run.get("run_id"),
        "dag_id": run.get("dag_id"),
        "published_at": run.get("published_at"),
        "model": manifest.get("model"),
        "threshold": (manifest.get("model") or {}).get("threshold"),
        "data": {k: (manifest.get("data") or {}).get(k) for k in ("rows", "sha256", "source")},
        "code": manifest.get("code"),
        "headline": headline(metrics),
        "expected": expected(metrics),
        "promise": guarantee_line(metrics),
        "expected_line": expected_line((metrics or {}).get("expected_performance")),
        "signoff": manifest.get("signoff"),  # None: a release from before the sign-off was recorded
        "has_card": release.model_card.name in (manifest.get("documents") or {}),
        "signature": signature_status(release),
    }


def signature_status(release: ReleasePaths) -> dict[str, Any]:
    """Whether a release verifies now (``etl.releases.reader.read_release``): ``verified``, the
    signing key's fingerprint (``key``: the verified one, or the one the signature names), and
    ``problem``, the one-line refusal when it does not verify."""
    from etl.releases.reader import read_release
    from etl.releases.signing import signer_of

    try:
        return {"verified": True, "key": read_release(release.root).signer, "problem": None}
    except PipelineError as exc:
        try:
            named = signer_of(storage.read_bytes(release.signature))
        except (FileNotFoundError, OSError):
            named = None
        return {"verified": False, "key": named, "problem": str(exc)}


def list_releases(layout: ResultsPaths) -> dict[str, Any]:
    """The published release's name and every kept release's summary, newest first."""
    current = current_name(layout)
    releases = [release_summary(layout, name, current) for name in storage.list_folders(layout.releases)]
    return {"current": current, "releases": sorted(releases, key=_order, reverse=True)}


def monitoring(layout: ResultsPaths) -> dict[str, Any]:
    """What the confirmed outcomes say (``etl.outcomes``): each release's record, the summary
    (files, unmatched ids, conflicts); empty before the first outcome file."""
    folder = layout.monitoring.root / "releases"
    releases = {}
    for path in storage.list_files(folder, ".json"):
        record = _read(path)
        if record:
            releases[record["release"]] = record
    return {"releases": releases, "summary": _read(layout.monitoring.summary) or {}}


def find_run(layout: ResultsPaths, ident: str) -> str | None:
    """The key of the run folder named by ``ident``, an Airflow run id or a run key; None when
    no listed run folder matches. ``ident`` is compared with the listed names, never used as a
    path."""
    keys = set(storage.list_folders(layout.runs))
    if ident in keys:
        return ident
    try:
        sanitized = run_key(None, ident)  # a run with no logical date: its folder is its run id
    except ValueError:
        return None
    if sanitized in keys:
        return sanitized
    for key in keys:  # runs with a logical date: their run.json names the run id
        if (_read(layout.run(key).run_record) or {}).get("run_id") == ident:
            return key
    return None


def find_release(layout: ResultsPaths, name: str) -> ReleasePaths | None:
    """The release folder called ``name`` if it is listed; None otherwise."""
    return layout.release(name) if name in set(storage.list_folders(layout.releases)) else None



#: The order of the calls in a batch's view: the cases that need someone first.
CALL_ORDER = ("malignant", "refer", "benign", "out of scope")
#: Cases a batch's page shows at most (the whole batch is its ``predictions.csv``).
SHOWN_CASES = 500


def batch_summary(layout: ResultsPaths, name: str) -> dict[str, Any] | None:
    """A scored batch's ``report.json`` with its drift in one line (``etl.data.drift.summary``);
    None when it has none (yet)."""
    from etl.data.drift import summary

    report = _read(layout.batch(name).report)
    if not report:
        return None
    return {**report, "name": name, "drift_line": summary(report["drift"]) if report.get("drift") else "",
            "drifted": bool((report.get("drift") or {}).get("drifted"))}


def list_batches(layout: ResultsPaths, limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` scored batches (``batch_summary``), newest first."""
    batches = [b for b in (batch_summary(layout, n) for n in storage.list_folders(layout.scoring)) if b]
    return sorted(batches, key=lambda b: (b.get("scored_at") or "", b["name"]), reverse=True)[:limit]


def find_batch(layout: ResultsPaths, name: str) -> str | None:
    """``name`` if it is a listed scored batch; None otherwise (never used as a path)."""
    return name if name in set(storage.list_folders(layout.scoring)) else None


def batch_cases(layout: ResultsPaths, name: str, sort: str = "call", descending: bool = True) -> dict[str, Any]:
    """A batch's cases for its view, sorted by ``sort`` (``call``: the calls in ``CALL_ORDER``,
    each by probability, highest first; ``probability``; ``id``), the first ``SHOWN_CASES``."""
    import pandas as pd

    frame = storage.read_frame(layout.batch(name).predictions)
    text = {c: object for c in frame.columns if c in ("call", "out_of_scope") or c.startswith("reason_")}
    frame = frame.astype(text).fillna({c: "" for c in text})  # a column with no text is read as floats
    frame["malignant_probability"] = pd.to_numeric(frame["malignant_probability"], errors="coerce")
    if sort == "probability":
        frame = frame.sort_values("malignant_probability", ascending=not descending, na_position="last",
                                  kind="stable")
    elif sort == "id":
        frame = frame.sort_values("id", ascending=not descending, kind="stable")
    else:
        rank = frame["call"].map({c: i for i, c in enumerate(CALL_ORDER)}).fillna(len(CALL_ORDER))
        frame = frame.assign(_rank=rank if descending else -rank).sort_values(
            ["_rank", "malignant_probability"], ascending=[True, False], na_position="last", kind="stable")
    shown = frame.head(SHOWN_CASES)
    columns = ["id", "call", "malignant_probability", *[c for c in frame.columns if c.startswith("reason_")],
               "out_of_scope"]
    cases = [{c: (None if c == "malignant_probability" and pd.isna(v) else v) for c, v in row.items()}
             for row in shown[[c for c in columns if c in shown.columns]].to_dict("records")]
    return {"cases": cases, "total": len(frame), "sort": sort, "descending": descending}
