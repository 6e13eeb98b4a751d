"""A real browser for the UI tests: Debian's headless Chromium driven by Selenium, as a person
uses the Airflow UI (log in through the form, click Trigger, open a run's tab, the nav).

Traffic stays on 127.0.0.1: Chromium's background connections (updates, sync, Google's hosts)
are switched off.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1000",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-extensions")


class Browser:
    """One Chromium session on the Airflow UI at ``base``."""

    def __init__(self, driver, base: str, shots: Path, timeout: float):
        self.driver, self.base, self.shots, self.timeout = driver, base, shots, timeout

    def wait(self, condition: Callable[[], object], what: str, timeout: float | None = None):
        """Poll ``condition`` (page content renders asynchronously) until it is truthy."""
        from selenium.common.exceptions import WebDriverException

        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            try:
                value = condition()
                if value:
                    return value
            except WebDriverException:
                pass
            time.sleep(0.5)
        self.screenshot("timeout")
        pytest.fail(f"browser: timed out waiting for {what} on {self.driver.current_url}")

    def find(self, by: str, value: str, what: str):
        return self.wait(lambda: next(iter(self.driver.find_elements(by, value)), None), what)

    def login(self, user: str, password: str) -> None:
        """Log in through the UI's login form."""
        from selenium.webdriver.common.by import By

        self.driver.get(self.base + "/")
        self.wait(lambda: len(self.driver.find_elements(By.TAG_NAME, "input")) >= 2, "the login form")
        name, secret = self.driver.find_elements(By.TAG_NAME, "input")[:2]
        name.send_keys(user)
        secret.send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait(lambda: "/auth/login" not in self.driver.current_url, "the login to finish")

    def trigger(self, dag_id: str) -> None:
        """Open the DAG's page, its Trigger form, and start a run with the form's defaults."""
        from selenium.webdriver.common.by import By

        self.driver.get(f"{self.base}/dags/{dag_id}")
        self.find(By.XPATH, "//button[normalize-space()='Trigger']", "the Trigger button").click()
        buttons = self.wait(lambda: (lambda found: found if len(found) >= 2 else None)(
            self.driver.find_elements(By.XPATH, "//button[normalize-space()='Trigger']")), "the Trigger form")
        buttons[-1].click()  # the form's own Trigger button
        self.wait(lambda: len(self.driver.find_elements(By.XPATH, "//button[normalize-space()='Trigger']")) < 2,
                  "the Trigger form to close")

    def open_run(self, dag_id: str, run_id: str) -> None:
        self.driver.get(f"{self.base}/dags/{dag_id}/runs/{quote(run_id, safe='')}")

    def idle(self) -> None:
        """Leave the UI for a blank page while the test waits through REST: the UI's pages poll
        the API every few seconds (auto-refresh), which costs the api-server and the browser CPU
        for nothing. ``frame_text`` and the other steps open a UI page again."""
        self.driver.get("about:blank")

    def frame_text(self, link: str, expect: str) -> str:
        """Click the tab or nav entry ``link`` (from the UI's home page after ``idle``), then
        return the text of the view it shows (an iframe) once it contains ``expect``."""
        from selenium.webdriver.common.by import By

        if self.driver.current_url == "about:blank":
            self.driver.get(self.base + "/")
        self.find(By.LINK_TEXT, link, f"the {link!r} link").click()

        def text():
            self.driver.switch_to.default_content()
            frames = self.driver.find_elements(By.TAG_NAME, "iframe")
            if not frames:
                return None
            self.driver.switch_to.frame(frames[0])
            body = self.driver.find_element(By.TAG_NAME, "body").text
            return body if expect in body else None

        try:
            return self.wait(text, f"{expect!r} in the {link!r} view")
        finally:
            self.driver.switch_to.default_content()

    def click_in_frame(self, by: str, value: str, expect: str) -> str:
        """In the view shown (an iframe, after ``frame_text``), click the element ``value`` (found
        ``by``), then return the view's text once it contains ``expect``."""
        from selenium.webdriver.common.by import By

        def inside() -> None:
            self.driver.switch_to.default_content()
            self.driver.switch_to.frame(self.driver.find_elements(By.TAG_NAME, "iframe")[0])

        def text():
            inside()
            body = self.driver.find_element(By.TAG_NAME, "body").text
            return body if expect in body else None

        try:
            inside()
            self.wait(lambda: self.driver.find_elements(by, value), f"{value!r} in the view")[0].click()
            return self.wait(text, f"{expect!r} in the view")
        finally:
            self.driver.switch_to.default_content()

    def answer_required_action(self, subject: str, option: str, comment: str) -> None:
        """Browse > Required Actions, open the request titled ``subject``, write ``comment`` in
        its form and press ``option`` (Approve, Reject): as an approver does in the UI."""
        from selenium.webdriver.common.by import By

        self.driver.get(self.base + "/")
        self.find(By.XPATH, "//button[normalize-space()='Browse']", "the Browse menu").click()
        self.find(By.XPATH, "//a[normalize-space()='Required Actions']", "Browse > Required Actions").click()
        self.find(By.XPATH, f"//a[normalize-space()={_xpath_text(subject)}]", f"the request {subject!r}").click()
        field = self.find(By.ID, "element_comment", "the request's Comment field")
        field.send_keys(comment)
        self.find(By.XPATH, f"//button[normalize-space()='{option}']", f"the {option} button").click()
        # Taken: the page says who answered, and the form's buttons are disabled.
        self.wait(lambda: "Response received at" in self.driver.find_element(By.TAG_NAME, "body").text,
                  f"the {option} answer to be taken")

    def screenshot(self, name: str) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def _xpath_text(text: str) -> str:
    """``text`` as an XPath string literal (it may hold either quote)."""
    if "'" not in text:
        return f"'{text}'"
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"


@contextmanager
def browser(base: str, shots: Path, timeout: float = 60) -> Iterator[Browser]:
    """A headless Chromium session. Without Chromium the test fails saying what to install
    (``make test`` installs it: deploy/install-system-packages.sh)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield Browser(driver, base, shots, timeout)
    finally:
        driver.quit()
