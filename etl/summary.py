"""Print the published metrics and where the artifacts are (the last step of ``make run``)."""

from __future__ import annotations

import argparse
import sys

from etl import storage
from etl.config import MANIFEST, PUBLISHED_ARTIFACTS, load_settings
from etl.errors import PipelineError
from etl.releases import current_release, release_run_key

#: Metrics shown in the table, in this order.
SHOWN = ("recall", "specificity", "precision", "accuracy", "f1", "roc_auc", "pr_auc", "brier")


def format_summary(metrics: dict, results_dir: str, release: str = "") -> str:
    """A short human-readable table of ``metrics`` and the artifact locations."""
    model = metrics.get("model", {}).get("candidate", "?")
    lines = [f"Test-set metrics ({metrics.get('n_test', '?')} rows, positive class: malignant), "
             f"model {model} at threshold {metrics.get('threshold', 0.5):.4f}:",
             f"  {'':<12} {'value':>7}  95 % CI"]
    ci = metrics.get("ci95", {})
    lines += [f"  {name:<12} {metrics[name]:>7.4f}" + (f"  [{ci[name][0]:.3f}, {ci[name][1]:.3f}]" if name in ci else "")
              for name in SHOWN if name in metrics]
    lines.append(f"Published artifacts{f' (release {release})' if release else ''}:")
    lines += [f"  {results_dir}/{name}" for name in (*PUBLISHED_ARTIFACTS, MANIFEST)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    results_dir = load_settings().results_dir
    try:
        release = current_release(results_dir)
        metrics = storage.read_json(release / "metrics.json")
    except PipelineError as exc:
        print(f"error: {exc}: no published results yet (run `make run`)", file=sys.stderr)
        return 1
    print(format_summary(metrics, str(results_dir), release.name))
    run_key = release_run_key(release.name)
    report = results_dir / "runs" / run_key / "report.html"
    if report.is_file():
        print(f"Report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
