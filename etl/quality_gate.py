"""The ``quality_gate`` step from the command line: decide whether an evaluated run may be
published and write its ``gate.json`` (``python -m etl.quality_gate``).

The decision itself is ``etl.releases.gate`` (see its docstring for every check); ``save_results``
publishes by it and never decides again.
"""

from __future__ import annotations

from etl import runner
from etl.releases.gate import check_run
from etl.runner import Outputs, Run, Step


def _quality_gate(run: Run) -> Outputs:
    """``check_run`` against the published release with ``[gate]``."""
    return check_run(run.inputs("quality_gate"), run.folder.gate, run.settings.results_dir, run.settings.gate)


STEPS = runner.steps(Step("quality_gate", _quality_gate))
main = runner.entry_point(STEPS, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
