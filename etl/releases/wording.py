"""The pipeline's words, each written once: the headline numbers (what the procedure is expected
to do on new patients, what the operating point promises) for the report, ``make run``'s summary
and the Model page; the number formats; and the Jinja2 templates of ``etl/templates/`` (the model
card, the UI's pages, and ``wording.j2``, the sentences they share, such as a sign-off's).
Light (standard library and Jinja2): the UI plugin imports it."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: The templates: the model card (Markdown), the UI's pages (``ui/``, HTML), ``wording.j2``.
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def pct(value: float, digits: int = 1) -> str:
    """A share as a percentage: ``0.9741`` -> ``97.4 %``."""
    return f"{100 * float(value):.{digits}f} %"


def num(value: Any, digits: int = 3) -> str:
    """A decimal with ``digits`` places (an en dash for none)."""
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "\u2013"


def interval(bounds: Sequence[float], fmt: Any = pct) -> str:
    """A confidence interval ``[lo, hi]`` in the format ``fmt``."""
    return f"[{fmt(bounds[0])}, {fmt(bounds[1])}]"


@functools.cache
def environment(html: bool) -> Any:
    """The Jinja2 environment of the templates: HTML (the UI) escapes every value; Markdown (the
    model card) does not. Undefined names fail loudly."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             autoescape=html, keep_trailing_newline=True)
    env.filters.update(pct=pct, num=num, interval=interval, int=lambda value: str(int(value)),
                       quote=lambda value: quote(str(value), safe=""))
    # How ``wording.j2``'s sentences mark a word up: a name in bold, a setting in code.
    if html:
        env.globals.update(strong=lambda text: Markup("<b>%s</b>") % text,
                           mono=lambda text: Markup("<code>%s</code>") % text)
    else:
        env.globals.update(strong=lambda text: f"**{text}**", mono=lambda text: f"`{text}`")
    env.globals.update(pct=pct, num=num, expected_line=expected_line)
    return env


def signoff(record: Mapping[str, Any] | None, html: bool, **where: str) -> str:
    """A release's sign-off in one sentence (``wording.j2``), as HTML or Markdown."""
    return environment(html).get_template("wording.j2").module.signoff(record, **where)


def render(template: str, html: bool, **context: Any) -> str:
    """Template ``template`` (a path under ``etl/templates/``) with ``context``."""
    return environment(html).get_template(template).render(**context)


def expected_line(expected: Mapping[str, Any] | None) -> str:
    """``caught 413 of 424 malignant (sensitivity 0.974 [0.943, 0.991]), cleared ...``: the pooled
    counts of the nested cross-validation (every outer repeat scores each patient once), or an
    empty string when a run has none (or is older than the pooled counts)."""
    pooled = (expected or {}).get("pooled")
    if not pooled:
        return ""
    cm = pooled["confusion_matrix"]
    return (f"caught {cm['tp']} of {pooled['malignant']} malignant (sensitivity {pooled['sensitivity']:.3f} "
            f"[{pooled['sensitivity_ci95'][0]:.3f}, {pooled['sensitivity_ci95'][1]:.3f}]), cleared {cm['tn']} of "
            f"{pooled['benign']} benign (specificity {pooled['specificity']:.3f} [{pooled['specificity_ci95'][0]:.3f}, "
            f"{pooled['specificity_ci95'][1]:.3f}])")


def guarantee_line(metrics: Mapping[str, Any] | None) -> str:
    """The guarantees of ``metrics.json``, one sentence each: the operating point's (a *benign*
    call), then the three-way call's (a *malignant* call; older runs have none). Empty for
    runs older still."""
    metrics = metrics or {}
    second = ((metrics.get("triage") or {}).get("guarantees") or {}).get("malignant")
    return " ".join(str(s) for s in (metrics.get("guarantee"), second) if s)
