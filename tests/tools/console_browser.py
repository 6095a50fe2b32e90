"""Walks the gateway's web console in a real headless Chromium (Debian's, driven by Playwright) the
way an accountant would, and reports what it saw as JSON on stdout.

Usage: console_browser.py CONFIG.json, where the config names the gateway's base URL, the keys
(`issuer`: issue+read on `rut`; `buyer`: admin on `buyer_rut`; `revoked`), the batch CSV to upload,
and the folder for screenshots (each page at 1280 px and at 390 px wide).

The upload and the decision are done with the keyboard only: the script presses Tab until the
control it needs has the focus, and Enter or Space to use it.
"""
import json
import os
import sys
import zipfile
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

cfg = json.load(open(sys.argv[1]))
base = cfg["base"]
origin = urlparse(base).netloc
shots = cfg["shots"]
os.makedirs(shots, exist_ok=True)
outside, errors, report = [], [], {}


def watch(page):
    def on_request(r):
        u = urlparse(r.url)
        if u.scheme not in ("data", "blob") and u.netloc != origin:
            outside.append(r.url)

    page.on("request", on_request)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))


def shot(page, name):
    # Whole pages, except long lists: their first screen says enough.
    tall = page.evaluate("document.documentElement.scrollHeight") > 1800
    page.screenshot(path=os.path.join(shots, name + ".png"), full_page=not tall)


def tab_to(page, selector, limit=80):
    """Presses Tab until the focused element matches `selector`; returns how many presses."""
    for n in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            return n
    raise AssertionError("the keyboard never reached " + selector)


def sign_in(page, key):
    page.goto(base + "/console")
    page.wait_for_selector("#key")
    tab_to(page, "#key")
    page.keyboard.type(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def unlabeled(page):
    """Form controls without a label a screen reader would read."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map(e => e.outerHTML)"""
    )


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    watch(page)
    labels = []

    # A revoked key is refused at the door.
    page.goto(base + "/console")
    report["redirected_to"] = urlparse(page.url).path
    shot(page, "signin-1280")
    sign_in(page, cfg["revoked"])
    report["revoked_path"] = urlparse(page.url).path
    report["revoked_message"] = page.inner_text(".problem") if page.query_selector(".problem") else ""
    errors[:] = [e for e in errors if "401" not in e]

    # The issuer signs in with the keyboard and lands on its Resumen.
    sign_in(page, cfg["issuer"])
    report["issuer_path"] = urlparse(page.url).path
    labels += unlabeled(page)
    shot(page, "resumen-1280")

    # Another company's page is not found for a key bound to this one.
    r = page.goto(base + "/console/c/" + cfg["buyer_rut"])
    report["other_company_status"] = r.status
    errors[:] = [e for e in errors if "404" not in e]

    # A form posted without its CSRF token (or with a wrong one) is refused.
    doc_action = base + "/console/c/" + cfg["rut"] + "/documentos/33/1/reenviar"
    report["csrf_missing_status"] = page.request.post(doc_action, form={}).status
    report["csrf_wrong_status"] = page.request.post(doc_action, form={"_csrf": "x" * 43}).status

    # Lotes: upload the CSV with the keyboard only, all or nothing, and watch the bar to 100 %.
    page.goto(base + "/console/lotes")
    labels += unlabeled(page)
    shot(page, "lotes-1280")
    tab_to(page, "#file")
    with page.expect_file_chooser() as fc:
        page.keyboard.press("Space")
    fc.value.set_files(cfg["csv"])
    tab_to(page, "#aon")
    page.keyboard.press("Space")
    report["all_or_nothing_checked"] = page.is_checked("#aon")
    tab_to(page, "#upload button[type=submit]")
    streams = []
    page.on("response", lambda r: streams.append(r.headers.get("content-type", "")) if r.url.endswith("/eventos") else None)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    report["batch_path"] = urlparse(page.url).path
    page.wait_for_selector('#batch[data-pct="100"]', state="attached", timeout=180000)
    report["bar"] = page.evaluate("[document.getElementById('bar').value, document.getElementById('bar').max]")
    report["bar_text"] = page.inner_text("#bar-text")
    # The page sets data-pct only from the batch's event stream.
    report["event_stream"] = streams[:1]
    shot(page, "lote-1280")
    with page.expect_download() as dl:
        page.click("#results")
    zpath = os.path.join(shots, "..", "results.zip")
    dl.value.save_as(zpath)
    with zipfile.ZipFile(zpath) as z:
        report["results_entries"] = len(z.namelist())

    # A file dropped on the page (drag-and-drop), all or nothing, with a bad line: refused whole,
    # with the line of each error.
    page.goto(base + "/console/lotes")
    page.evaluate(
        """(text) => {
          const dt = new DataTransfer();
          dt.items.add(new File([text], "malos.csv", {type: "text/csv"}));
          document.getElementById("drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        open(cfg["bad_csv"], encoding="utf-8").read(),
    )
    report["dropped"] = page.inner_text("#drop .picked")
    page.check("#aon")
    with page.expect_navigation():
        page.click("#upload button[type=submit]")
    report["refused_rows"] = page.eval_on_selector_all("table.errors tbody tr", "rs => rs.map(r => r.innerText)")
    report["refused_message"] = page.inner_text("#upload .problem")
    errors[:] = [e for e in errors if "422" not in e and "400" not in e]

    # Documentos: the list, a document's page, and its PDF.
    page.goto(base + "/console/c/" + cfg["rut"] + "/documentos")
    labels += unlabeled(page)
    shot(page, "documentos-1280")
    with page.expect_navigation():
        page.click("table tbody tr:first-child td:nth-child(2) a")
    report["document_path"] = urlparse(page.url).path
    shot(page, "documento-1280")
    with page.expect_download() as dl:
        page.click("#pdf-letter")
    pdf = os.path.join(shots, "..", "document.pdf")
    dl.value.save_as(pdf)
    report["pdf"] = os.path.abspath(pdf)

    # Sign out; the buyer signs in and decides a received document with the keyboard only.
    with page.expect_navigation():
        page.click(".signout button")
    report["after_signout"] = urlparse(page.url).path
    sign_in(page, cfg["buyer"])
    page.goto(base + "/console/c/" + cfg["buyer_rut"] + "/recibidos")
    labels += unlabeled(page)
    report["urgent_rows"] = page.eval_on_selector_all("#inbox tr.urgent", "rs => rs.map(r => r.dataset.folio)")
    shot(page, "recibidos-1280")
    tab_to(page, '#inbox tr[data-folio="1"] a.button')
    with page.expect_navigation():
        page.keyboard.press("Enter")
    shot(page, "confirmar-1280")
    labels += unlabeled(page)
    tab_to(page, "#decision button[type=submit]")
    with page.expect_navigation(timeout=60000):
        page.keyboard.press("Enter")
    report["decided_path"] = urlparse(page.url).path
    report["decided_message"] = page.inner_text(".done") if page.query_selector(".done") else page.content()[:2000]
    shot(page, "recibidos-decidido-1280")

    # Configuración: a new key is shown once.
    page.goto(base + "/console/c/" + cfg["buyer_rut"] + "/configuracion")
    labels += unlabeled(page)
    shot(page, "configuracion-1280")
    # A CAF the API would refuse is refused here with the API's message, inside its form.
    page.set_input_files("#caf", cfg["bad_caf"])
    with page.expect_navigation():
        page.click("form[action$='/cafs'] button[type=submit]")
    report["caf_message"] = page.inner_text("form[action$='/cafs'] .problem")
    errors[:] = [e for e in errors if "422" not in e and "400" not in e]
    page.check("#scope-read")
    with page.expect_navigation():
        page.click("form[action$='/claves'] button[type=submit]")
    report["new_key_shown"] = page.input_value("#secret").startswith("dgw_")
    page.goto(base + "/console/c/" + cfg["buyer_rut"] + "/configuracion")
    report["key_shown_again"] = page.query_selector("#secret") is not None

    # The same pages on a phone-sized screen.
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    mp = phone.new_page()
    watch(mp)
    mp.goto(base + "/console")
    shot(mp, "signin-390")
    sign_in(mp, cfg["issuer"])
    batch = report["batch_path"]
    for path, name in [
        ("/console/c/" + cfg["rut"], "resumen-390"),
        ("/console/c/" + cfg["rut"] + "/documentos", "documentos-390"),
        (report["document_path"], "documento-390"),
        ("/console/lotes", "lotes-390"),
        (batch, "lote-390"),
    ]:
        mp.goto(base + path)
        shot(mp, name)
    report["phone_overflow"] = mp.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    with mp.expect_navigation():
        mp.click(".signout button")
    sign_in(mp, cfg["buyer"])
    for path, name in [
        ("/console/c/" + cfg["buyer_rut"] + "/recibidos", "recibidos-390"),
        ("/console/c/" + cfg["buyer_rut"] + "/configuracion", "configuracion-390"),
    ]:
        mp.goto(base + path)
        shot(mp, name)
    browser.close()

report["outside"] = outside
report["errors"] = errors
report["unlabeled"] = labels
print(json.dumps(report))
