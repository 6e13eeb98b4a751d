"""Stop with one line when this Python is outside the project's range (``requires-python`` in
pyproject.toml, the one place it is written): ``make`` runs it before it makes the venv, so an
unsupported interpreter stops here, not in pip's resolver minutes later. Any Python 3 runs it."""

import re
import sys
from pathlib import Path

text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
low, high = re.search(r'requires-python = ">=(\d+\.\d+),<(\d+\.\d+)"', text).groups()
low_v, high_v = (tuple(map(int, v.split("."))) for v in (low, high))
if not low_v <= sys.version_info[:2] < high_v:
    last = f"{high_v[0]}.{high_v[1] - 1}"
    sys.exit(f"make: this project needs Python {low} to {last}; {sys.executable} is "
             f"{sys.version_info[0]}.{sys.version_info[1]} (make run PYTHON=python{low}, say)")
