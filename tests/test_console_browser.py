"""The web console in a real headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium): what a person does with it, with axe-core checking each page it shows."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import requests

from console_support import ServedService, csrf_of

pytestmark = pytest.mark.browser
ASSETS = Path(__file__).with_name("assets")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BASE = "/api/v1/reports"


def _browser_missing() -> str:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is missing (scripts/install-system-packages installs chromium and chromium-driver)"
    return ""


@pytest.fixture(scope="module")
def service(tmp_path_factory, botreports_demo_db):
    """The service as ``botreports serve`` runs it: API and console, a Huey queue with a worker."""
    from botreports import Reports
    from botreports.adapters.queue import make_queue

    data_dir = tmp_path_factory.mktemp("console") / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    queue = make_queue(None, data_dir, workers=1)
    rk = Reports(data_dir=data_dir, queue=queue, load_entrypoints=False)
    queue.start()
    served = ServedService(rk)
    served.keys = {role: rk.create_api_key("org-acme", role, name=f"{role} key")[0]
                   for role in ("admin", "report_viewer")}
    served.keys["other"] = rk.create_api_key("org-other", "admin", name="other org")[0]
    yield served
    served.stop()
    rk.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests need Chromium in CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(predicate, timeout=30.0, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def sign_in(browser, service, role):
    """Sign in through the form, by keyboard: the key field has the focus, Enter sends it."""
    from selenium.webdriver.common.keys import Keys

    browser.delete_all_cookies()
    browser.get(f"{service.url}/")
    _wait(lambda: browser.current_url.endswith("/signin") or "/signin?" in browser.current_url, what="sign-in page")
    field = browser.switch_to.active_element
    assert field.get_attribute("id") == "f-credential"
    field.send_keys(service.keys[role], Keys.ENTER)
    _wait(lambda: browser.current_url.endswith("/reports"), what="the reports page")


def axe(browser, page: str):
    """Run axe-core in the page; fail on any serious or critical violation."""
    if not browser.execute_script("return !!window.axe"):
        browser.execute_script((ASSETS / "axe.min.js").read_text(encoding="utf-8"))
    assert browser.execute_script("return axe.version").startswith("4.")
    result = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(function (r) { done(r.violations); },"
        " function (e) { done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]); });")
    serious = [(v["id"], v["impact"], v["help"], [n.get("target") for n in v["nodes"]][:3])
               for v in result if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{page}: {serious}"
    if os.environ.get("AXE_VERBOSE"):
        print(page, [(v["id"], v["impact"], len(v["nodes"])) for v in result])
    return result


def test_admin_generates_a_pdf_watches_it_finish_downloads_and_reads_it(browser, service):
    from pdfminer.high_level import extract_text
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, service, "admin")
    axe(browser, "reports, empty")
    browser.find_element(By.ID, "generate-link").click()
    _wait(lambda: browser.current_url.endswith("/reports/new"), what="the form")
    axe(browser, "new report")
    Select(browser.find_element(By.ID, "f-type")).select_by_value("usage")
    Select(browser.find_element(By.ID, "f-format")).select_by_value("pdf")
    # Only the chosen format's options are shown.
    assert browser.find_element(By.CSS_SELECTOR, '[data-format-options="pdf"]').is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, '[data-format-options="csv"]').is_displayed()
    Select(browser.find_element(By.ID, "f-period")).select_by_value("custom")
    browser.execute_script("document.getElementById('f-start_date').value = '2025-01-20';"
                           "document.getElementById('f-end_date').value = '2025-01-26';")
    zone = browser.find_element(By.ID, "f-timezone")
    assert zone.get_attribute("value")  # the browser's own zone, filled in by the page
    zone.clear()
    zone.send_keys("Europe/Lisbon")
    browser.find_element(By.ID, "f-title").send_keys("Weekly usage in the browser")
    browser.execute_script("window.sameDocument = true;")
    browser.find_element(By.ID, "generate-button").click()
    _wait(lambda: "/reports/rpt-" in browser.current_url, what="the report's page")
    report_id = browser.current_url.rsplit("/", 1)[1]
    browser.execute_script("window.sameDocument = 'report page';")
    if browser.find_element(By.CSS_SELECTOR, f'[data-report-id="{report_id}"]').get_attribute("data-state") != \
            "completed":
        assert not browser.find_element(By.ID, "download-link").is_displayed()  # not before it is ready
    seen = []

    def finished():
        box = browser.find_element(By.CSS_SELECTOR, f'[data-report-id="{report_id}"]')
        bars = box.find_elements(By.CSS_SELECTOR, "progress")
        if bars:
            seen.append(int(float(bars[0].get_attribute("value"))))
        return box.get_attribute("data-state") in ("completed", "failed")

    _wait(finished, timeout=90, what="the report to finish")
    box = browser.find_element(By.CSS_SELECTOR, f'[data-report-id="{report_id}"]')
    assert box.get_attribute("data-state") == "completed"
    assert seen and seen[-1] == 100 and seen == sorted(seen), seen
    assert browser.find_element(By.CSS_SELECTOR, '[data-field="state"]').text == "completed"
    assert browser.execute_script("return window.sameDocument") == "report page"  # no reload
    link = browser.find_element(By.ID, "download-link")
    assert link.is_displayed()
    axe(browser, "report page")
    link.click()
    pdf = _wait(lambda: [p for p in browser.downloads.glob("*.pdf") if p.stat().st_size > 0], what="the download")[0]
    _wait(lambda: not list(browser.downloads.glob("*.crdownload")), what="the download to end")
    text = extract_text(str(pdf))
    api = requests.get(f"{service.url}{BASE}/{report_id}", headers={"X-API-Key": service.keys["admin"]}).json()
    assert "Weekly usage in the browser" in text and "2025-01-20" in text
    assert pdf.stat().st_size == api["file_size"]
    assert pdf.name.startswith("Weekly usage in the browser")


def test_bad_date_is_shown_next_to_its_field(browser, service):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, service, "admin")
    browser.get(f"{service.url}/reports/new")
    Select(browser.find_element(By.ID, "f-period")).select_by_value("custom")
    browser.execute_script("document.getElementById('f-start_date').value = '2025-02-10';"
                           "document.getElementById('f-end_date').value = '2025-02-01';")
    browser.find_element(By.ID, "generate-button").click()
    error = _wait(lambda: browser.find_elements(By.ID, "f-end_date-error"), what="the error")[0]
    assert "must not be before start_date" in error.text
    field = browser.find_element(By.ID, "f-end_date")
    assert field.get_attribute("aria-invalid") == "true"
    assert "f-end_date-error" in field.get_attribute("aria-describedby")
    assert browser.switch_to.active_element.get_attribute("id") == "error-summary"
    axe(browser, "new report with errors")


def test_schedule_is_created_edited_disabled_and_deleted(browser, service):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, service, "admin")
    browser.get(f"{service.url}/schedules")
    axe(browser, "schedules, empty")
    browser.find_element(By.LINK_TEXT, "New schedule").click()
    axe(browser, "new schedule")
    browser.find_element(By.ID, "f-name").send_keys("Monday usage")
    Select(browser.find_element(By.ID, "f-type")).select_by_value("usage")
    cron = browser.find_element(By.ID, "f-cron")
    cron.clear()
    cron.send_keys("0 8 * * 1")
    zone = browser.find_element(By.ID, "f-timezone")
    zone.clear()
    zone.send_keys("America/New_York")
    browser.find_element(By.ID, "f-recipients").send_keys("boss@example.com\nops@example.com")
    browser.find_element(By.ID, "save-schedule").click()
    _wait(lambda: browser.current_url.split("?")[0].endswith("/schedules"), what="the schedules")
    api = {"X-API-Key": service.keys["admin"]}
    [stored] = requests.get(f"{service.url}{BASE}/schedule", headers=api).json()
    assert (stored["name"], stored["cron"], stored["timezone"]) == ("Monday usage", "0 8 * * 1", "America/New_York")
    assert stored["recipients"] == ["boss@example.com", "ops@example.com"]
    row = browser.find_element(By.CSS_SELECTOR, f'[data-schedule-id="{stored["schedule_id"]}"]')
    assert stored["next_run_at_local"][:16].replace("T", " ") in row.text  # next run in local time
    axe(browser, "schedules")

    row.find_element(By.PARTIAL_LINK_TEXT, "Edit").click()
    cron = browser.find_element(By.ID, "f-cron")
    cron.clear()
    cron.send_keys("not a cron")
    browser.find_element(By.ID, "save-schedule").click()
    assert _wait(lambda: browser.find_elements(By.ID, "f-cron-error"), what="the cron error")[0].text
    cron = browser.find_element(By.ID, "f-cron")
    cron.clear()
    cron.send_keys("30 9 * * 2")
    browser.find_element(By.ID, "save-schedule").click()
    _wait(lambda: "Saved the schedule" in browser.page_source, what="saved")
    [stored] = requests.get(f"{service.url}{BASE}/schedule", headers=api).json()
    assert stored["cron"] == "30 9 * * 2" and stored["enabled"] is True

    row = browser.find_element(By.CSS_SELECTOR, f'[data-schedule-id="{stored["schedule_id"]}"]')
    row.find_element(By.XPATH, ".//button[starts-with(normalize-space(.), 'Disable')]").click()
    _wait(lambda: "Disabled the schedule" in browser.page_source, what="disabled")
    assert requests.get(f"{service.url}{BASE}/schedule", headers=api).json()[0]["enabled"] is False
    row = browser.find_element(By.CSS_SELECTOR, f'[data-schedule-id="{stored["schedule_id"]}"]')
    row.find_element(By.XPATH, ".//button[starts-with(normalize-space(.), 'Delete')]").click()
    question = browser.switch_to.alert
    assert question.text == "Delete the schedule Monday usage? Its runs stop."
    question.dismiss()  # asked, and kept
    assert requests.get(f"{service.url}{BASE}/schedule", headers=api).json() != []
    row = browser.find_element(By.CSS_SELECTOR, f'[data-schedule-id="{stored["schedule_id"]}"]')
    row.find_element(By.XPATH, ".//button[starts-with(normalize-space(.), 'Delete')]").click()
    browser.switch_to.alert.accept()
    _wait(lambda: "Deleted the schedule" in browser.page_source, what="deleted")
    assert requests.get(f"{service.url}{BASE}/schedule", headers=api).json() == []


def test_templates_catalog_create_and_details(browser, service):
    from selenium.webdriver.common.by import By

    sign_in(browser, service, "admin")
    browser.get(f"{service.url}/templates")
    axe(browser, "templates")
    browser.find_element(By.LINK_TEXT, "New template").click()
    axe(browser, "new template")
    browser.find_element(By.ID, "f-name").send_keys("Board pack")
    browser.find_element(By.CSS_SELECTOR, 'label[for="f-section-usage_summary"]').click()
    browser.find_element(By.CSS_SELECTOR, 'label[for="f-section-latency"]').click()
    browser.find_element(By.XPATH, "//button[normalize-space(.)='Create template']").click()
    _wait(lambda: "/templates/tpl-" in browser.current_url, what="the template's page")
    assert "Usage summary" in browser.page_source and "Reply latency" in browser.page_source
    axe(browser, "template page")
    browser.get(f"{service.url}/templates")
    assert "Board pack" in browser.find_element(By.TAG_NAME, "main").text


def test_viewer_sees_no_generate_button_and_a_forged_post_is_refused(browser, service):
    from selenium.webdriver.common.by import By

    sign_in(browser, service, "report_viewer")
    assert browser.find_elements(By.ID, "generate-link") == []
    assert browser.find_elements(By.LINK_TEXT, "New report") == []
    token = csrf_of(browser.page_source)
    status = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "var body = new URLSearchParams({csrf_token: arguments[0], type: 'usage', format: 'json'});"
        "fetch('/reports/new', {method: 'POST', body: body, redirect: 'manual'})"
        ".then(function (r) { done(r.status); });",
        token)
    assert status == 403
    axe(browser, "reports as a viewer")


def test_other_organisations_report_is_the_not_found_page(browser, service):
    from selenium.webdriver.common.by import By

    other = requests.post(f"{service.url}{BASE}/generate", headers={"X-API-Key": service.keys["other"]},
                          json={"type": "usage", "format": "json", "period": "last_7_days"}).json()["report_id"]
    sign_in(browser, service, "admin")
    browser.get(f"{service.url}/reports/{other}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert other not in browser.find_element(By.TAG_NAME, "main").text or "not found" in browser.page_source
    axe(browser, "not found")


def test_form_post_without_csrf_token_is_refused(browser, service):
    sign_in(browser, service, "admin")
    status = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "var body = new URLSearchParams({type: 'usage', format: 'json', period: 'last_7_days'});"
        "fetch('/reports/new', {method: 'POST', body: body, redirect: 'manual'})"
        ".then(function (r) { done(r.status); });")
    assert status == 403


def test_keyboard_narrow_screen_dark_mode_and_sign_out(browser, service):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, service, "admin")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content"
    skip.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"
    try:
        browser.set_window_size(390, 844)
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        for path in ("/reports", "/reports/new", "/schedules", "/templates"):
            browser.get(f"{service.url}{path}")
            width = browser.execute_script("return document.documentElement.scrollWidth")
            viewport = browser.execute_script("return window.innerWidth")
            assert width <= viewport, f"{path} scrolls sideways at {viewport} px: {width} px wide"
            background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(20, 23, 27)"
            axe(browser, f"{path} dark at 390 px")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(1280, 900)
    browser.find_element(By.XPATH, "//button[normalize-space(.)='Sign out']").click()
    _wait(lambda: "/signin" in browser.current_url, what="the sign-in page")
    assert "You have signed out" in browser.page_source
    axe(browser, "sign in")
    browser.get(f"{service.url}/reports")
    assert "/signin" in browser.current_url
