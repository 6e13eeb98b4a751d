"""Score the CSVs that arrive in the scoring inbox with the published model, and check each
batch for drift: ``python -m etl.score`` (every file of the inbox, like the scoring DAG) or
``python -m etl.score --input new.csv`` (one file, left where it is).

The inbox (``[scoring] inbox``, default ``data/incoming/``)::

    data/incoming/
      new-batch.csv             a file arrives (write it elsewhere and move it in, or write it
                                under a name starting with '.' and rename it: it must be whole)
      queued/new-batch.csv      claimed for scoring (by the inbox watcher or the DAG's first task)
      processed/new-batch.csv   scored: its outputs are complete
      rejected/bad.csv          refused, with rejected/bad.csv.reason.txt: the one-line reason

No file is overwritten: a name already taken is kept as ``new-batch.2.csv``; a file with the bytes
of one already scored (under any name) is recognised and not scored twice (``etl.storage.inbox.keep``).

Each file gives ``results/scoring/<file stem>-<content hash>/``: ``predictions.csv`` (``id``,
``malignant_probability``, ``predicted``, ``release``, ``call``, ``out_of_scope``, ``reason_1`` to
``reason_3``; the same function and bytes as ``etl.predict``) and ``report.json`` (when, counts per
call, the share predicted malignant, the release and its threshold, the drift check of
``etl.data.drift``). The Model page links each batch's own view (``etl.ui.app``). A file moves on from ``queued/`` only after its
outputs are complete, so a run killed in the middle scores it again (same bytes) and a finished
one never does twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from etl import runner, storage
from etl.catalog import DataValidationError
from etl.data import drift
from etl.data.contract import read_rows
from etl.data.schema import FEATURE_COLUMNS, ID_COLUMN
from etl.data.scope import OUT_OF_SCOPE
from etl.modeling.procedure import score_rows
from etl.modeling.thresholds import CALLS
from etl.releases.reader import Release, open_release
from etl.settings import ScoringSettings
from etl.storage import Location
from etl.storage.inbox import SUFFIX, claim, file_away, keep, queued
from etl.storage.layout import InboxPaths, ResultsPaths

logger = logging.getLogger(__name__)

def batch_name(path: Location) -> str:
    """The batch's folder name: the file's stem and the first 12 hex digits of its SHA-256
    (the same file gives the same folder; a changed file under the same name another)."""
    path = storage.location(path)
    stem = path.name[: -len(SUFFIX)] if path.name.lower().endswith(SUFFIX) else path.name
    return f"{stem}-{storage.sha256(path)[:12]}"


def score_batch(
    path: Location,
    results_dir: Location,
    check: ScoringSettings,
    release: Release | None = None,
) -> dict[str, Any]:
    """Score one file with ``release`` (default: the published one, verified) and check it
    for drift; write its predictions and report under ``results/scoring/<batch>/``.

    Raises:
        DataValidationError: the file breaks the input contract (one line).

    Returns:
        ``batch``, ``predictions``, ``report`` (paths) and the report's headline: ``rows``,
        ``release``, ``drifted`` and ``drift`` (one line).
    """
    path = storage.location(path)
    release = release or open_release(results_dir=results_dir)
    rows = read_rows(path)
    out = score_rows(release, rows, check.novelty_alpha)
    report = drift.drift_report(rows, release.manifest.get("feature_reference"), check)
    batch = ResultsPaths(storage.location(results_dir)).batch(batch_name(path))
    malignant = int((out["predicted"] == "M").sum())
    storage.write_frame(out, batch.predictions)
    storage.write_frame(rows[[ID_COLUMN, *FEATURE_COLUMNS]], batch.rows)
    storage.write_json({
        "batch": batch.root.name,
        "scored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": {"name": path.name, "sha256": storage.sha256(path), "bytes": storage.size(path)},
        "rows": len(out),
        "predicted_malignant": malignant,
        "share_malignant": round(malignant / len(out), 6) if len(out) else 0.0,
        "calls": {c: int((out["call"] == c).sum()) for c in (*CALLS, OUT_OF_SCOPE)},  # out of scope counted apart
        "release": release.name,
        "candidate": release.manifest["model"]["candidate"],
        "threshold": release.threshold,
        "drift": report,
    }, batch.report)
    line = drift.summary(report)
    logger.info("scored %s: %d row(s), %d predicted malignant, release %s; %s",
                path.name, len(out), malignant, release.name, line)
    return {"batch": batch.root.name, "predictions": str(batch.predictions), "report": str(batch.report),
            "rows": len(out), "release": release.name, "drifted": report["drifted"], "drift": line}


def process(
    path: Location,
    inbox: InboxPaths,
    results_dir: Location,
    check: ScoringSettings,
    release: Release | None = None,
) -> dict[str, Any]:
    """``score_batch`` a queued file, then move it to ``processed/``; a file that breaks the
    contract moves to ``rejected/`` with its reason beside it, and the error is raised again."""
    path = storage.location(path)
    earlier = scored_before(path, results_dir)
    if earlier is not None:  # the same bytes again (under any name): recognised, not scored twice
        kept, _ = keep(path, inbox.processed)
        logger.info("%s has the same bytes as batch %s, already scored: not scored again", path.name, earlier)
        report = storage.read_json(ResultsPaths(storage.location(results_dir)).batch(earlier).report)
        return {"batch": earlier, "duplicate_of": earlier, "processed": str(kept), "rows": report["rows"],
                "release": report["release"], "drifted": False, "drift": "not checked again (already scored)"}
    return file_away(path, inbox, lambda p: score_batch(p, results_dir, check, release))


def scored_before(path: Location, results_dir: Location) -> str | None:
    """The batch already scored from a file with these bytes (its folder ends with the file's
    hash), or None."""
    digest = storage.sha256(storage.location(path))[:12]
    scoring = ResultsPaths(storage.location(results_dir)).scoring
    if not scoring.exists():  # (a folder: storage.exists is for files)
        return None
    for folder in sorted(scoring.iterdir(), key=lambda p: p.name):
        if folder.name.endswith(f"-{digest}") and storage.exists(folder / "report.json"):
            return folder.name
    return None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, _ = runner.parser(__doc__)
    p.add_argument("--input", type=runner.path_arg, default=None,
                   help="score this one file, left where it is (default: every file of the inbox)")
    p.add_argument("--release", type=runner.path_arg, default=None,
                   help="release folder (default: the published one, results/current)")

    def action(a):
        release = open_release(a.release, settings.results_dir)
        if a.input is not None:
            return score_batch(a.input, settings.results_dir, settings.scoring, release)
        inbox = settings.inbox
        claim(inbox)
        done, rejected = [], []
        for path in queued(inbox):
            try:
                done.append(process(path, inbox, settings.results_dir, settings.scoring, release)["batch"])
            except DataValidationError:
                rejected.append(path.name)
        return {"scored": done, "rejected": rejected}

    return runner.command(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
