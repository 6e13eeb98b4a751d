"""Print the published model's expected performance and test metrics, and where the artifacts
are (the last step of ``make run``)."""

from __future__ import annotations

import argparse
import sys

from etl.catalog import MissingInputError, PipelineError
from etl.data.schema import SCORES
from etl.releases.reader import current_release, read_release
from etl.releases.wording import expected_line, guarantee_line
from etl.settings import load_settings
from etl.storage.layout import TOP_FILES


def format_summary(metrics: dict, results_dir: str, release: str = "", signer: str = "") -> str:
    """A short human-readable table of ``metrics`` and the artifact locations: the expected
    performance on unseen patients (nested CV: mean, sd, min) beside the test-split check
    (value and 95 % interval); the key that signed the release."""
    model = metrics.get("model", {}).get("candidate", "?")
    expected = metrics.get("expected_performance")
    ci = metrics.get("ci95", {})
    lines = []
    if guarantee_line(metrics):
        lines.append(f"Promise: {guarantee_line(metrics)}")
    if expected_line(expected):
        repeats = expected.get("outer_repeats", 1)
        lines.append(f"Expected on unseen patients (nested CV, {expected['outer_folds'] // repeats} outer folds x "
                     f"{repeats} repeats, pooled):")
        lines.append(f"  {expected_line(expected)}")
    if expected:
        lines.append(f"Per outer fold (mean, sd, min) and the published model on its test split "
                     f"({metrics.get('n_test', '?')} rows):")
        lines.append(f"  {'':<12} {'mean':>7} {'sd':>7} {'min':>7}   |  {'test':>7}  95 % CI")
    else:
        lines.append(f"Test-set metrics ({metrics.get('n_test', '?')} rows):")
        lines.append(f"  {'':<12} {'test':>7}  95 % CI")
    for name in SCORES:
        if name not in metrics:
            continue
        left = ""
        if expected:
            e = expected["scores"][name]
            left = f" {e['mean']:>7.4f} {e['sd']:>7.4f} {e['min']:>7.4f}   | "
        interval = f"  [{ci[name][0]:.3f}, {ci[name][1]:.3f}]" if name in ci else ""
        lines.append(f"  {name:<12}{left} {metrics[name]:>7.4f}{interval}")
    lines.append(f"Model {model} at threshold {metrics.get('threshold', 0.5):.4f} (positive class: malignant).")
    signed = f", signed with key {signer[:12]}..., verified" if signer else ""
    lines.append(f"Published artifacts{f' (release {release}{signed})' if release else ''} in {results_dir}/: "
                 f"{', '.join(TOP_FILES)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    settings = load_settings()
    results_dir = settings.results_dir
    try:
        release = read_release(current_release(results_dir))
    except MissingInputError as exc:
        print(f"error: {exc}: no published results yet (run `make run`)", file=sys.stderr)
        return 1
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(release.json(release.paths.metrics.name), str(results_dir), release.name, release.signer))
    report = settings.layout.run(release.paths.run_key).report
    if report.is_file():
        print(f"Report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
