"""Opens the gateway's /docs in a real headless Chromium (Debian's, driven by Playwright) and
reports, as JSON on stdout: how many operations the viewer rendered, every request that left the
gateway, every console error, and the status the viewer showed after "Try it out" sent
GET /v1/companies/{rut} with the API key. Usage: docs_browser.py BASE_URL API_KEY RUT [SCREENSHOT.png]
"""
import json
import sys
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

base, key, rut = sys.argv[1], sys.argv[2], sys.argv[3]
shot = sys.argv[4] if len(sys.argv) > 4 else None
origin = urlparse(base).netloc
outside, errors = [], []


def on_request(r):
    u = urlparse(r.url)
    if u.scheme not in ("data", "blob") and u.netloc != origin:
        outside.append(r.url)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("request", on_request)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock", timeout=30000)
    operations = page.locator(".opblock").count()
    # Authorize: the API key as the bearer token.
    page.click("button.authorize")
    page.fill(".modal-ux input[type=text], .modal-ux input[type=password]", key)
    page.click(".modal-ux .auth-btn-wrapper button.authorize")
    page.click(".modal-ux button.btn-done")
    # GET /v1/companies/{rut}, tried out.
    op = page.locator("#operations-companies-get")
    op.locator(".opblock-summary").first.click()
    op.locator("button.try-out__btn").click()
    op.locator("input[placeholder=rut]").fill(rut)
    op.locator("button.execute").click()
    status = op.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=30000)
    shown = status.inner_text().strip()
    body = op.locator(".live-responses-table tbody .response-col_description pre").first.inner_text()
    if shot:
        page.screenshot(path=shot, full_page=False)
    browser.close()

print(json.dumps({"operations": operations, "outside": outside, "errors": errors, "status": shown, "body": body}))
