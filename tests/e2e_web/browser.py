"""Debian's Chromium, driven headless by Selenium through Debian's chromedriver (nothing is
downloaded at test time), for the web pages' tests: sign-in through the test's OpenID Connect
provider, screenshots under target/web-screenshots/."""

from __future__ import annotations

import os
import shutil
import tempfile
import json
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "web-screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,900"]


class Browser:
    """One Chromium with its own fresh profile (cookies), closed by :meth:`quit`."""

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        os.environ.setdefault("SE_AVOID_STATS", "true")
        self.profile = Path(tempfile.mkdtemp(prefix="jitweb-chromium-"))
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for f in FLAGS + [f"--user-data-dir={self.profile}"]:
            opts.add_argument(f)
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(60)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- pages

    def go(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return self.driver.current_url

    def find(self, css: str):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list:
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, css: str, timeout: float = 30):
        """The first element matching ``css``, once the page has one."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait
        try:
            return WebDriverWait(self.driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))
        except Exception as e:
            raise AssertionError(f"no {css} on {self.url} within {timeout}s:\n{self.driver.page_source[:3000]}") from e

    def click(self, css: str) -> None:
        self.find(css).click()

    def sign_in(self, broker_url: str, issuer: str, sub: str, path: str = "/ui/pending") -> None:
        """Open a page of the broker, sign in at the provider's form as ``sub``, come back."""
        self.go(broker_url + path)
        self.wait('input[name="sub"]')
        assert self.url.startswith(issuer + "/oauth2/authorize?"), self.url
        self.find('input[name="sub"]').send_keys(sub)
        self.find('form button[type="submit"]').click()
        self.wait("#signed-in-as")
        assert self.url.startswith(broker_url), self.url

    def sign_out(self) -> None:
        self.click("#sign-out")
        self.wait("#signed-out")

    def screenshot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def _toml(v) -> str:
    """A TOML scalar (strings as JSON strings, which TOML reads the same)."""
    return json.dumps(v)


def web_section(idp, secret: Path, groups: dict[str, list[str]], **over) -> str:
    web = {"public_url": over.pop("public_url"), "issuer": idp.issuer, "client_id": "jitbroker-e2e",
           "client_secret_file": str(secret), "ticket_url": "https://tracker.example.com/browse/{ticket}", **over}
    lines = ["", "[web]"] + [f"{k} = {_toml(v)}" for k, v in web.items()]
    lines += ["[web.groups]"] + [f"{json.dumps(k)} = [{', '.join(_toml(g) for g in v)}]" for k, v in groups.items()]
    return "\n".join(lines) + "\n"
