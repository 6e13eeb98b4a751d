"""Print the published metrics and where the artifacts are (the last step of ``make run``)."""

from __future__ import annotations

import argparse
import sys

from etl import storage
from etl.config import PUBLISHED_ARTIFACTS, load_settings
from etl.errors import PipelineError

#: Metrics shown in the table, in this order.
SHOWN = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")


def format_summary(metrics: dict, results_dir: str) -> str:
    """A short human-readable table of ``metrics`` and the artifact locations."""
    lines = [f"Test-set metrics ({metrics.get('n_test', '?')} rows, positive class: malignant):"]
    lines += [f"  {name:<12} {metrics[name]:.4f}" for name in SHOWN if name in metrics]
    lines.append(f"Artifacts in {results_dir}:")
    lines += [f"  {results_dir}/{name}" for name in PUBLISHED_ARTIFACTS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    results_dir = load_settings().results_dir
    try:
        metrics = storage.read_json(results_dir / "metrics.json")
    except PipelineError as exc:
        print(f"error: {exc}: no published results yet (run `make run`)", file=sys.stderr)
        return 1
    print(format_summary(metrics, str(results_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
