"""The Model page's confirmed-outcomes table (etl/templates/ui/outcomes.html.j2): per release, the
second promise's realized rate, the referral share and the cases out of scope; a release whose
predictions predate the three-way call shows dashes."""

import numpy as np

from etl.monitoring.performance import alarm, call_figures, counts
from etl.releases.wording import render


def test_the_calls_columns():
    y = np.r_[np.zeros(50, int), np.ones(20, int)]
    calls = np.array(["benign"] * 47 + ["malignant"] + ["refer"] * 2 + ["malignant"] * 18 + ["refer"] * 2, dtype=object)
    p = np.where(calls == "malignant", 0.9, 0.1)
    figures = counts(y, p, (calls == "malignant").astype(int))
    rec = {"realized": {**figures, "calibration": []}, "expected": {}, "calls": call_figures(y, calls),
           "alarm": alarm(figures, y, p, 0.97, 0.99, 20, 30, call_figures(y, calls), 0.99), "out_of_scope": 3}
    old = {**rec, "calls": None, "out_of_scope": 0}
    html = render("ui/outcomes.html.j2", html=True, monitoring={"releases": {"r1": rec, "r0": old}, "summary": {}},
                  current_name="r1")
    new_row, old_row = html.split("<code>r1</code>")[1].split("</tr>")[0], html.split("<code>r0</code>")[1].split("</tr>")[0]
    assert "0.020 [0.001, 0.106] <span class=muted>(1 of 50)</span>" in new_row  # benign called malignant
    assert "<td class=num>0.057</td><td class=num>3</td>" in new_row  # 4 of 70 referred, 3 out of scope
    assert old_row.count("<td class=num>\u2013</td>") == 4  # no call recorded: dashes (and no expected figures)
