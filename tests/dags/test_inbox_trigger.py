"""The inbox watcher's trigger (it runs in the triggerer): claims new CSVs and fires once,
without importing pandas or scikit-learn."""

import asyncio
import json
import subprocess
import sys

from etl.orchestration.triggers import InboxTrigger
from etl.storage.layout import InboxPaths
from tests.conftest import PROJECT_ROOT


def test_it_fires_once_for_new_files_and_claims_them(tmp_path):
    inbox = InboxPaths(tmp_path / "incoming")
    inbox.root.mkdir()
    (inbox.root / "a.csv").write_text("id\n")
    (inbox.root / "b.CSV").write_text("id\n")
    (inbox.root / ".c.csv").write_text("id\n")  # still being written
    (inbox.root / "notes.txt").write_text("x")
    trigger = InboxTrigger(str(inbox.root), "aws_unused_here", poll_seconds=0.05)

    async def first_event():
        async for event in trigger.run():
            return event

    event = asyncio.run(asyncio.wait_for(first_event(), timeout=60))
    assert event.payload == {"inbox": str(inbox.root), "claimed": ["a.csv", "b.CSV"]}
    assert sorted(p.name for p in inbox.queued.iterdir()) == ["a.csv", "b.CSV"]
    assert sorted(p.name for p in inbox.root.iterdir()) == [".c.csv", "notes.txt", "queued"]
    kind, kwargs = trigger.serialize()
    assert InboxTrigger(**kwargs).serialize() == (kind, kwargs)


def test_it_imports_no_heavy_library(tmp_path):
    (tmp_path / "x.csv").write_text("id\n")
    script = (
        "import json, sys; from etl.orchestration.triggers import InboxTrigger; "
        "claimed = InboxTrigger(sys.argv[1], 'unused', 10.0)._claim(); "
        "print(json.dumps({'claimed': claimed, 'heavy': [m for m in ('pandas', 'sklearn', 'scipy') if m in sys.modules]}))"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False, capture_output=True,
                          text=True, timeout=120, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"claimed": ["x.csv"], "heavy": []}
