"""Confirmed diagnoses of scored cases: ``python -m etl.outcomes`` (every file of the outcomes
inbox, like the ``breast_cancer_outcomes`` DAG) or ``python -m etl.outcomes --input results.csv``
(one file, left where it is).

An outcome file is a CSV of ``id`` and ``diagnosis`` (``M`` or ``B``: the pathology result),
optionally ``date`` (``YYYY-MM-DD``, when it was confirmed; else the day it arrived). It arrives
in ``[outcomes] inbox`` (default ``data/outcomes/``), laid out as the scoring inbox (``queued/``,
``processed/``, ``rejected/`` with a one-line reason; no file overwritten, the same bytes twice
recognised: ``etl.storage.inbox``).

Each file accepted is copied, validated, into the ledger, ``results/monitoring/outcomes/<stem>-
<hash>.parquet`` (named by its bytes: a rerun writes the same file, so a killed run then a rerun
counts each outcome once). The monitoring records are then recomputed from the whole ledger and
every scored batch (``etl.monitoring.performance``): ``results/monitoring/releases/<release>.json`` and
``summary.json``.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from etl import runner, storage
from etl.catalog import DataValidationError
from etl.monitoring.performance import LEDGER_COLUMNS, join, release_records, resolve
from etl.settings import OutcomesSettings
from etl.storage import Location
from etl.storage.inbox import SUFFIX, claim, file_away, queued
from etl.storage.layout import InboxPaths, ResultsPaths

logger = logging.getLogger(__name__)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def read_outcomes(path: Location) -> pd.DataFrame:
    """The outcomes of one file: ``id``, ``diagnosis`` (M/B), ``date`` ("" when not given).

    Raises:
        DataValidationError: one line naming the file, the line and what is wrong.
    """
    path = storage.location(path)
    name = path.name
    try:
        with storage.open_read(path) as fh:
            df = pd.read_csv(fh, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataValidationError(f"{name}: not a CSV of id, diagnosis: {str(exc).splitlines()[0]}") from None
    df.columns = [str(c).strip().lower().lstrip("\ufeff") for c in df.columns]
    missing = [c for c in ("id", "diagnosis") if c not in df.columns]
    if missing:
        raise DataValidationError(f"{name}: no {' or '.join(missing)} column (an outcome file has id, diagnosis"
                                  f"[, date]; found {', '.join(df.columns) or 'none'})")
    df = df.assign(id=df["id"].str.strip(), diagnosis=df["diagnosis"].str.strip().str.upper(),
                   date=df["date"].str.strip() if "date" in df.columns else "")
    for i, row in enumerate(df.itertuples(index=False), start=2):  # line 1 is the header
        if not row.id:
            raise DataValidationError(f"{name}: line {i}: no id")
        if row.diagnosis not in ("M", "B"):
            raise DataValidationError(f"{name}: line {i}: diagnosis {row.diagnosis!r} of id {row.id} is not M or B")
        if row.date and not _DATE.fullmatch(row.date):
            raise DataValidationError(f"{name}: line {i}: date {row.date!r} of id {row.id} is not YYYY-MM-DD")
    if df.empty:
        raise DataValidationError(f"{name}: no outcomes (only a header)")
    return df[["id", "diagnosis", "date"]]


def ledger_name(path: Location) -> str:
    """The ledger file of an outcome file: its stem and the first 12 hex digits of its SHA-256."""
    path = storage.location(path)
    stem = path.name[: -len(SUFFIX)] if path.name.lower().endswith(SUFFIX) else path.name
    return f"{stem}-{storage.sha256(path)[:12]}.parquet"


def record(path: Location, results_dir: Location) -> dict[str, Any]:
    """Validate one outcome file and write it to the ledger (the same bytes: the same ledger
    file, written once).

    Returns:
        ``ledger`` (the file), ``outcomes`` (rows), ``new`` (False when it was there already).
    """
    path = storage.location(path)
    target = ResultsPaths(storage.location(results_dir)).monitoring.ledger / ledger_name(path)
    if storage.exists(target):
        rows = len(storage.read_frame(target))
        logger.info("%s: already in the ledger as %s (the same bytes): counted once", path.name, target.name)
        return {"ledger": str(target), "outcomes": rows, "new": False}
    outcomes = read_outcomes(path)
    received = datetime.now(UTC).date().isoformat()
    storage.write_frame(outcomes.assign(file=path.name, received=received), target)
    logger.info("%s: %d outcome(s) recorded (%d malignant)", path.name, len(outcomes),
                int((outcomes["diagnosis"] == "M").sum()))
    return {"ledger": str(target), "outcomes": len(outcomes), "new": True}


def process(path: Location, inbox: InboxPaths, results_dir: Location) -> dict[str, Any]:
    """``record`` a queued file, then file it in ``processed/``; a bad file goes to
    ``rejected/`` with its reason, and the error is raised again."""
    return file_away(path, inbox, lambda p: record(p, results_dir))


# -- the monitoring records -----------------------------------------------------------------------


def read_ledger(results_dir: Location) -> pd.DataFrame:
    """Every outcome received, one row per line of an accepted file."""
    folder = ResultsPaths(storage.location(results_dir)).monitoring.ledger
    frames = [storage.read_frame(p) for p in storage.list_files(folder, ".parquet")]
    if not frames:
        return pd.DataFrame(columns=[*LEDGER_COLUMNS, "received"])
    df = pd.concat(frames, ignore_index=True).astype(str)
    # the same outcome in two files (a clinic sent it twice): one row, the earliest file first
    return df.sort_values(["id", "received", "file"]).drop_duplicates(["id", "diagnosis", "date", "file"])


def read_predictions(results_dir: Location) -> pd.DataFrame:
    """Every prediction of every scored batch, with its batch."""
    layout = ResultsPaths(storage.location(results_dir))
    frames = []
    if layout.scoring.exists():  # (a folder)
        for folder in sorted(layout.scoring.iterdir(), key=lambda p: p.name):
            batch = layout.batch(folder.name)
            if storage.exists(batch.report):  # complete outputs only
                with storage.open_read(batch.predictions) as fh:
                    frames.append(pd.read_csv(fh, dtype={"id": str}).assign(batch=folder.name))
    if not frames:
        return pd.DataFrame(columns=["id", "malignant_probability", "predicted", "release", "batch"])
    return pd.concat(frames, ignore_index=True).astype({"id": str})


def promises(results_dir: Location, releases: list[str]) -> dict[str, dict[str, Any]]:
    """Each release's target sensitivity and expected performance (its ``metrics.json``, read
    from the release verified against its signature; none for a release pruned since).

    Raises:
        IntegrityError: a kept release does not verify (one line; nothing is recorded).
    """
    from etl.releases.reader import read_release

    layout = ResultsPaths(storage.location(results_dir))
    out = {}
    for name in releases:
        release = layout.release(name)
        if not storage.exists(release.metrics):
            out[name] = {}
            continue
        metrics = read_release(release.root).json(release.metrics.name)
        pooled = (metrics.get("expected_performance") or {}).get("pooled") or {}
        out[name] = {"target_sensitivity": (metrics.get("operating_point") or {}).get("target_sensitivity"),
                     "target_malignant_specificity":
                         ((metrics.get("triage") or {}).get("malignant_threshold") or {}).get("target_specificity"),
                     "expected": {k: pooled.get(k) for k in ("sensitivity", "sensitivity_ci95", "specificity",
                                                              "specificity_ci95", "malignant", "benign")} or None}
    return out


def _joined(results_dir: Location) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]], pd.DataFrame,
                                             list[str]]:
    """The ledger, its resolved outcomes and conflicts, and those outcomes joined to every
    scored prediction (with the ids never scored)."""
    ledger = read_ledger(results_dir)
    resolved, conflicts = resolve(ledger)
    matched, unmatched = join(resolved, read_predictions(results_dir))
    return ledger, resolved, conflicts, matched, unmatched


def confirmed(results_dir: Location) -> pd.DataFrame:
    """Every prediction joined to its id's confirmed, unconflicted outcome."""
    return _joined(results_dir)[3]


def update_monitoring(results_dir: Location, settings: OutcomesSettings) -> dict[str, Any]:
    """Recompute every release's record from the whole ledger and every scored batch; write
    them and ``summary.json``.

    Returns:
        ``summary`` (path), ``releases`` (name: path), ``new_alarms`` (release: its alarm
        record, for alarms raised now that were not raised before), ``unmatched``,
        ``conflicts`` (counts).
    """
    layout = ResultsPaths(storage.location(results_dir))
    ledger, resolved, conflicts, matched, unmatched = _joined(results_dir)
    for conflict in conflicts:
        logger.error("id %s: confirmed %s: refused, counted nowhere until one is withdrawn", conflict["id"],
                     " and ".join(f"{d} in {', '.join(files)}" for d, files in conflict["diagnoses"].items()))
    records = release_records(matched, promises(results_dir, sorted(set(matched.get("release", [])))),
                              settings.alarm_confidence, settings.alarm_min_malignant, settings.alarm_min_cases)
    new_alarms, paths = {}, {}
    for name, rec in records.items():
        path = layout.monitoring.release(name)
        before = storage.read_json(path) if storage.exists(path) else {}
        earlier = before.get("alarm") or {}
        was = earlier.get("raised", False)
        rec["alarm"]["raised_at"] = None
        if rec["alarm"]["raised"]:  # when it was first raised (and still is)
            rec["alarm"]["raised_at"] = earlier.get("raised_at") if was else \
                datetime.now(UTC).isoformat(timespec="seconds")
        if rec["alarm"]["raised"] and not was:
            new_alarms[name] = rec["alarm"]
            logger.warning("release %s: ALARM: %s", name, "; ".join(rec["alarm"]["reasons"]))
        storage.write_json(rec, path)
        paths[name] = str(path)
    summary = {
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": sorted(set(ledger["file"])) if not ledger.empty else [],
        "outcomes": len(resolved),
        "unmatched": unmatched,
        "conflicts": conflicts,
        "releases": {name: {k: rec["realized"][k] for k in ("confirmed", "malignant", "caught", "benign", "cleared")}
                     | {"alarm": rec["alarm"]["raised"]} for name, rec in records.items()},
    }
    if unmatched:
        logger.warning("%d outcome(s) for ids never scored, kept aside: %s", len(unmatched),
                       ", ".join(unmatched[:10]) + (" ..." if len(unmatched) > 10 else ""))
    storage.write_json(summary, layout.monitoring.summary)
    return {"summary": str(layout.monitoring.summary), "releases": paths, "new_alarms": new_alarms,
            "unmatched": len(unmatched), "conflicts": len(conflicts)}


def alarm_message(release: str, alarm: dict[str, Any]) -> tuple[str, str]:
    """The subject and body of a release's alarm."""
    return (f"[Airflow] release {release}: its promise is broken on confirmed outcomes",
            f"Release: {release}\n" + "\n".join(alarm["reasons"])
            + "\nRecord: results/monitoring/releases/" + f"{release}.json")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p, settings, _ = runner.parser(__doc__)
    p.add_argument("--input", type=runner.path_arg, default=None,
                   help="record this one file, left where it is (default: every file of the outcomes inbox)")

    def action(a):
        done, rejected = [], []
        if a.input is not None:
            done.append(record(a.input, settings.results_dir)["ledger"])
        else:
            inbox = settings.outcomes_inbox
            claim(inbox)
            for path in queued(inbox):
                try:
                    done.append(process(path, inbox, settings.results_dir)["ledger"])
                except DataValidationError:
                    rejected.append(path.name)
        out = update_monitoring(settings.results_dir, settings.outcomes)
        return {"recorded": done, "rejected": rejected, "releases": out["releases"],
                "alarms": sorted(out["new_alarms"]), "unmatched": out["unmatched"], "conflicts": out["conflicts"]}

    return runner.command(p, action, argv)


if __name__ == "__main__":
    raise SystemExit(main())
