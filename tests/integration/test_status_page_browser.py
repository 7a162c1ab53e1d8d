"""The nginx status page in a real headless Chromium (issue 14, "pictures").

The page is the role's own template (roles/nginx/templates/index.html.j2, rendered by Jinja as
Ansible does), served over real HTTP on loopback with the status.json and history.json that the
status-json cron job's own command writes (`netops status --json --output ... --history ...`)
against a real PostgreSQL and the simulator. Three boxes an operator meets: healthy, one with a
firing alert (also on a phone, 390x844), one whose database is down (its alerts last known before
the outage still shown, marked so). Each gets DOM assertions and a screenshot.

Screenshots go to the test's tmp dir; with NETOPS_SCREENSHOT_DIR set they are copied there too
(`NETOPS_SCREENSHOT_DIR=docs/screenshots .venv/bin/pytest tests/integration/test_status_page_browser.py`
refreshes the ones docs/observability.md shows).

Driver: Selenium with Debian's chromium-driver (the same version as Debian's chromium, so no
browser download). `scripts/test.sh` installs both on a root Debian box; elsewhere the test
skips, saying so.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from netops.config import Settings
from tests.fixtures.pg import query
from tests.integration.test_operator_scenarios import netops

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTH = 1280
PHONE = (390, 844)  # an iPhone 12-14's CSS viewport


def _missing_browser() -> str | None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return ("no headless browser: install Debian's chromium and chromium-driver "
                "(`apt-get install --no-install-recommends chromium chromium-driver`; scripts/test.sh does "
                "it on a root Debian box)")
    return None


pytestmark = pytest.mark.skipif(_missing_browser() is not None, reason=_missing_browser() or "")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A web root with the role's index.html, served on a free loopback port (the Date header
    the page counts ages on comes from this server, as from nginx)."""
    root = tmp_path / "www"
    root.mkdir()
    html = jinja2.Template((REPO / "roles/nginx/templates/index.html.j2").read_text()).render(
        inventory_hostname="netops-01", ansible_managed="Ansible managed: test")
    (root / "index.html").write_text(html)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={WIDTH},900", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def write_files(settings: Settings, root: Path) -> tuple[dict[str, Any], int]:
    """What the status-json cron job runs (roles/netops/defaults/main.yml), into the web root:
    status.json and history.json, one process. Returns status.json and the exit code (status's)."""
    r = netops(settings, "status", "--json", "--output", str(root / "status.json"),
               "--history", str(root / "history.json"))
    assert r.stdout == "", r.stdout
    return json.loads((root / "status.json").read_text()), r.returncode


def tables_caption(driver: Any, history: dict[str, Any]) -> str:
    """The rows-per-table graph's caption, checked against history.json: it names the brackets
    only when some table shows one (its rows changed in 24 h)."""
    changed = {n: t["rows"] - t["rows_24h_ago"] for n, t in history["tables"].items()
               if t["rows_24h_ago"] is not None and t["rows"] != t["rows_24h_ago"]}
    graph = text(driver, "#g-tables")
    for n, d in changed.items():
        assert f"({'+' if d > 0 else ''}{d:,})" in graph, (n, d, graph)
    caption = graph.splitlines()[-1]
    assert (caption == "(change over 24 h in brackets)") == bool(changed), graph
    return caption


def open_page(driver: Any, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.loaded"))


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def visible(driver: Any, css: str) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_element(By.CSS_SELECTOR, css).is_displayed())


def count(driver: Any, css: str) -> int:
    from selenium.webdriver.common.by import By

    return len(driver.find_elements(By.CSS_SELECTOR, css))


def screenshot(driver: Any, name: str, tmp_path: Path) -> Path:
    """The whole page (the window grown to the document's height), copied to
    NETOPS_SCREENSHOT_DIR when set."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, int(height) + 20)
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, (name, len(data))
    if os.environ.get("NETOPS_SCREENSHOT_DIR"):
        out = Path(os.environ["NETOPS_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / path.name)
    return path


def as_phone(driver: Any, height: int = PHONE[1]) -> None:
    """Emulate a phone's viewport (mobile: without a viewport tag the page is laid out 980 px wide)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": PHONE[0], "height": height, "deviceScaleFactor": 1, "mobile": True})


def off_screen(driver: Any, css: str) -> list[str]:
    """The elements under `css` that stick out of the viewport's width (cut off on a phone)."""
    return list(driver.execute_script(
        "const w = window.innerWidth; return [...document.querySelectorAll(arguments[0])]"
        ".filter(e => { const r = e.getBoundingClientRect(); return r.left < -0.5 || r.right > w + 0.5 ||"
        " e.scrollWidth > e.clientWidth + 1; }).map(e => e.outerHTML.slice(0, 120));", css))


def check_phone(driver: Any, url: str, tmp_path: Path) -> None:
    """The page at 390x844: laid out for the screen, nothing wider than it, every alert wrapped
    inside its card, the graphs' newest labels ("now", the latest hour) on screen; a screenshot."""
    as_phone(driver)
    open_page(driver, url + "?refresh=2")
    assert driver.execute_script("return window.innerWidth") == PHONE[0]  # the viewport tag: not 980
    assert driver.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
    assert count(driver, "#problems li") > 0
    assert off_screen(driver, "#problems li") == []
    assert off_screen(driver, ".card") == []
    assert off_screen(driver, ".scroll") == []  # the phase table fits too (no sideways scrolling)
    heights = driver.execute_script("return [...document.querySelectorAll('#problems li')].map(e => e.clientHeight)")
    assert max(heights) > 40  # a long alert wraps onto several lines instead of running off the card
    # the newest label of each time graph: "now" (backlog) and the latest hour (calls)
    for graph in ("#g-backlog svg text", "#g-calls svg text"):
        last = driver.execute_script(f"const t = [...document.querySelectorAll('{graph}')].filter(e => "
                                     "e.textContent.match(/now|:00/)); const r = t[t.length - 1]"
                                     ".getBoundingClientRect(); return [t[t.length - 1].textContent, r.left, r.right];")
        assert last[1] >= 0 and last[2] <= PHONE[0], (graph, last)
    assert "now" in text(driver, "#g-backlog")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    as_phone(driver, int(height))
    path = tmp_path / "status-phone.png"
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("NETOPS_SCREENSHOT_DIR"):
        shutil.copyfile(path, Path(os.environ["NETOPS_SCREENSHOT_DIR"]) / path.name)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.set_window_size(WIDTH, 900)


def only_own_origin(driver: Any, url: str) -> list[str]:
    """Every resource the page loaded that is not from its own server (should be none)."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [n for n in names if not n.startswith(url)]


def test_status_page_in_chromium(settings_factory: Callable[..., Settings], sim: Any, web: tuple[Path, str],
                                 browser: Any, tmp_path: Path) -> None:
    root, url = web
    settings = settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                                NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_RATE_PER_SECOND=20)
    html = (root / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside (no CDN)

    # --- a healthy box: two real syncs, the first moved 5 h back (as time would) -----------
    first = netops(settings, "sync", "stable", "--no-progress")
    assert first.returncode == 0, first.stderr
    first_status, _ = write_files(settings, root)  # this minute's backlog/table sample
    assert json.loads((root / "history.json").read_text())["schema_version"] == 1, first_status["problems"]
    for stmt in ("UPDATE netops.api_calls SET at = at - interval '5 hours'",
                 "UPDATE netops.sync_runs SET started_at = started_at - interval '5 hours', "
                 "finished_at = finished_at - interval '5 hours'",
                 "UPDATE netops.api_slots SET at = at - interval '5 hours'",
                 "UPDATE netops.monitor_samples SET at = at - interval '5 hours'"):
        query(settings.dsn, stmt)
    second = netops(settings, "sync", "stable", "--no-progress")
    assert second.returncode == 0, second.stderr
    status, rc = write_files(settings, root)
    assert rc == 0 and status["state"] == "ok", status["problems"]
    history = json.loads((root / "history.json").read_text())
    assert [h["calls"] > 0 for h in history["api"]["hours"]].count(True) == 2
    assert len(history["sync_runs"]) == 2 and len(history["backlog"]["samples"]) == 2

    open_page(browser, url + "?refresh=2")
    assert text(browser, "#state") == "ok" and browser.find_element("id", "state").get_attribute("class") == "ok"
    assert text(browser, "#alerts") == "Alerts firing: none" and count(browser, "#problems li") == 0
    assert not visible(browser, "#dbdown") and not visible(browser, "#stale")
    calls_1h = status["api"]["calls_last_hour"]
    assert text(browser, "#budget").startswith(f"{calls_1h} of {settings.rate_per_hour} calls"), text(browser, "#budget")
    assert count(browser, "#g-calls svg g.bar") == 24 and count(browser, "#g-calls svg rect") == 2
    assert count(browser, "#g-runs svg g.bar") == 2
    assert count(browser, "#g-backlog svg path") == 2
    tables_svg = text(browser, "#g-tables")
    for name in status["tables"]:
        assert name in tables_svg, (name, tables_svg)
    assert tables_caption(browser, history) == "No table changed in 24 h."  # the same sim twice
    assert count(browser, "#phases tr") == len(status["phases"]) > 0
    assert text(browser, "#history").startswith("Graphs from history.json written " + history["generated_at"])
    age = text(browser, "#age")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: text(d, "#age") != age)  # the age ticks by itself
    assert only_own_origin(browser, url) == []
    screenshot(browser, "status-healthy", tmp_path)

    # --- a firing alert: the cursus' projects listing answers 500, its phase fails --------------------
    sim.add_fault("500@/v2/cursus/:id/projects")
    failed = netops(settings, "sync", "stable", "--no-progress")
    assert failed.returncode != 0
    # and no campus a day ago: the graph shows the change in brackets, the caption says so
    query(settings.dsn, "UPDATE netops.monitor_samples SET table_rows = table_rows || '{\"campuses\": 0}'")
    status, rc = write_files(settings, root)
    assert rc == 1 and "sync_failed" in status["alerts"]["firing"], status["alerts"]  # a warning
    browser.set_window_size(WIDTH, 900)
    open_page(browser, url + "?refresh=2")
    assert text(browser, "#state") == status["state"] == "warning"
    assert "sync_failed" in text(browser, "#alerts")
    problems = text(browser, "#problems")
    assert "warning: sync_failed" in problems and "HTTP 500" in problems, problems
    assert count(browser, "#g-runs svg g.bar") == 3
    assert browser.find_elements("css selector", '#g-runs svg rect[fill="#dc2626"]')  # the failed run, in red
    assert browser.find_elements("css selector", '#g-calls svg rect[fill="#7c3aed"]')  # its 500s
    assert count(browser, "#phases td.critical") == 1
    assert tables_caption(browser, json.loads((root / "history.json").read_text())) == \
        "(change over 24 h in brackets)"
    screenshot(browser, "status-alert-firing", tmp_path)
    check_phone(browser, url, tmp_path)
    open_page(browser, url + "?refresh=2")

    # --- the database down: the same page, left open, re-reads the files by itself -----------
    down = settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                            NETOPS_CLIENT_SECRET=sim.client_secret,
                            NETOPS_DSN="postgresql://nobody@127.0.0.1:1/netops")
    last_good = json.loads((root / "history.json").read_text())
    status, rc = write_files(down, root)
    assert rc == 2 and json.loads((root / "history.json").read_text()) == last_good  # left as it was
    assert status["state"] == "critical" and status["alerts"]["firing"] == ["database_down"]
    # the alerts the database fed are unknown now, not resolved: the last known ones are carried
    last_known = status["alerts"]["last_known"]
    assert [p["check"] for p in last_known] == ["sync_failed"] and last_known[0]["known_at"], last_known
    WebDriverWait(browser, 15).until(lambda d: visible(d, "#dbdown"))  # no reload: the page's own refresh
    assert text(browser, "#state") == "critical"
    assert text(browser, "#dbdown").startswith("Database down:")
    assert "unknown (database unreachable)" in text(browser, "#budget")
    assert text(browser, "#backlog") == "Backlog: unknown (database unreachable)."
    assert "database_down" in text(browser, "#alerts")
    assert "last known before the database went down: sync_failed" in text(browser, "#alerts")
    kept = browser.find_element("css selector", "#problems li.last-known")
    assert kept.text.startswith("last known " + last_known[0]["known_at"]) and "sync_failed" in kept.text
    caption = text(browser, "#history")  # the graphs say they are old, and why
    assert caption.startswith("The database is down: the graphs are the last history.json written "
                              + last_good["generated_at"]), caption
    assert "calls unknown" in text(browser, "#keys")  # not "0 calls": the database holds them
    assert count(browser, "#g-calls svg g.bar") == 24  # still drawn, from the last history
    assert text(browser, "#phases").endswith("unknown (database unreachable)")
    screenshot(browser, "status-database-down", tmp_path)
