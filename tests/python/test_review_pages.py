"""The reviewers' pages in headless Chromium (Debian's, driven by Playwright): sign in with a
reviewer key, filter the queue, open a dispute, reassign it after the preview and see the ledger
change; a second reviewer's stale form is refused with the new state shown. Screenshots of the
queue and a dispute page go to target/review-screenshots/."""

import json
import re
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from conftest import ROOT, start, stop

SHOTS = ROOT / "target" / "review-screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def binary():
    return os.environ.get("LEADROUTER_BIN", str(ROOT / "target" / "debug" / "leadrouter"))


def add_key(keys_file, name, role):
    out = subprocess.run(
        [binary(), "keys", "add", "--name", name, "--role", role, "--keys-file", str(keys_file)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.split()[0]


def call(address, method, body, key):
    req = urllib.request.Request(
        f"http://{address}/leadrouter.v1.{method}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("review")
    keys = d / "keys.toml"
    k = {
        "client": add_key(keys, "mini", "router_client"),
        "ops": add_key(keys, "ops-1", "operator"),
        "rev1": add_key(keys, "rev-li", "reviewer"),
        "rev2": add_key(keys, "rev-wang", "reviewer"),
    }
    config = d / "leadrouter.toml"
    config.write_text(f'[auth]\nkeys_file = "{keys}"\n')
    proc, address, channel = start(["--config", str(config)])
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    disputes = []
    for i in range(3):
        member = f"m-review-{i}"
        # A share link from G000001 brought the member, who then chatted with G000001.
        call(address, "LeadRouter/Route", {
            "leadId": f"review-lead-{i}", "memberId": member, "channel": "MINI_PROGRAM",
            "regionCode": "440106", "referrerGuideId": "G000001", "occurredAt": now,
        }, k["client"])
        call(address, "Attribution/RecordTouch", {
            "touchId": f"review-t{i}", "memberId": member, "kind": "GUIDE_CHAT",
            "channel": "MINI_PROGRAM", "guideId": "G000001", "occurredAt": now,
        }, k["client"])
        call(address, "Attribution/RecordOrder", {
            "orderId": f"review-o{i}", "memberId": member, "amountCents": str(19900 + i),
            "paidChannel": "MINI_PROGRAM", "fulfillingStoreId": "S00001",
            "occurredAt": now,
        }, k["client"])
        claimant = "store:S00002" if i < 2 else "channel:ECOMMERCE"
        disputes.append(call(address, "Disputes/OpenDispute", {
            "orderId": f"review-o{i}", "claimant": claimant, "claimedOwner": "guide:G000005",
            "reason": "the customer was served in store by G000005",
        }, k["ops"]))
    yield {"address": address, "keys": k, "disputes": disputes}
    stop(proc, channel)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            raise AssertionError("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(browser, address, key, locale="zh-CN"):
    ctx = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"http://{address}/review/")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://{address}/review/")
    return ctx, page


def test_sign_in_is_needed_and_a_wrong_key_is_refused(keyed_server, browser):
    address = keyed_server["address"]
    ctx = browser.new_context(locale="zh-CN")
    page = ctx.new_page()
    page.goto(f"http://{address}/review/")
    assert page.locator("h1").inner_text() == "登录"
    page.fill("#key", "lrk_wrong")
    page.click("button[type=submit]")
    assert "密钥无效" in page.content()
    # A guide app's key is no reviewer's.
    page.fill("#key", keyed_server["keys"]["client"])
    page.click("button[type=submit]")
    assert "密钥无效" in page.content()
    # A dispute page without a session sends you to sign in.
    page.goto(f"http://{address}/review/dispute?id={keyed_server['disputes'][0]['disputeId']}")
    assert page.locator("#key").count() == 1
    ctx.close()
    # English when the browser prefers it.
    ctx = browser.new_context(locale="en-US")
    page = ctx.new_page()
    page.goto(f"http://{address}/review/")
    assert page.locator("h1").inner_text() == "Sign in"
    ctx.close()


def test_filter_open_reassign_and_see_the_ledger_change(keyed_server, browser):
    address = keyed_server["address"]
    first = keyed_server["disputes"][0]["disputeId"]
    ctx, page = sign_in(browser, address, keyed_server["keys"]["rev1"])
    assert "rev-li" in page.locator("header").inner_text()
    rows = page.locator("#disputes tbody tr")
    assert rows.count() == 3
    # Filter by claimant: htmx swaps the queue in place.
    page.fill("#f-claimant", "store:S00002")
    page.press("#f-claimant", "Enter")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"claimant=store"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)

    with page.expect_navigation():
        page.click(f"#disputes a[href='/review/dispute?id={first}']")
    assert page.locator("#owner-now").inner_text() == "guide:G000001"
    assert page.locator("#trail tr.deciding").count() >= 1, "the deciding events are highlighted"
    assert "哈希链完整" in page.content()
    page.screenshot(path=str(SHOTS / "dispute.png"), full_page=True)

    # Reassign: the reason is mandatory, the preview shows the compensating entries first.
    page.check("#o-reassign")
    page.fill("#new-owner", "guide:G000005")
    page.fill("#reason", "门店聊天记录显示由 G000005 接待")
    page.click("#preview")
    entries = page.locator("#entries tbody tr")
    assert entries.count() == 2
    text = page.locator("#entries").inner_text()
    assert "guide:G000001" in text and "guide:G000005" in text and "-¥59.70" in text
    page.screenshot(path=str(SHOTS / "preview.png"), full_page=True)
    page.click("#confirm")
    page.wait_for_url("**done=1")
    assert page.locator("#notice").count() == 1
    assert page.locator("#owner-now").inner_text() == "guide:G000005"
    assert "rev-li" in page.locator("#resolved-by").inner_text()
    net = page.locator("#net").inner_text()
    assert "guide:G000005" in net
    # The books moved: the ledger over JSON says the same.
    got = call(address, "Attribution/GetOwnership", {"orderId": "review-o0"}, keyed_server["keys"]["client"])
    assert got["ownerParty"] == "guide:G000005"
    # Who did what: the sign-in and the resolution, under the reviewer's key name.
    audit = call(address, "Catalog/ListAudit", {}, keyed_server["keys"]["ops"])["entries"]
    done = {(e["action"], e["operatorId"]) for e in audit}
    assert ("review_sign_in", "rev-li") in done and ("resolve_dispute", "rev-li") in done, done
    ctx.close()


def test_a_second_reviewers_stale_form_is_refused(keyed_server, browser):
    address = keyed_server["address"]
    second = keyed_server["disputes"][1]["disputeId"]
    ctx1, p1 = sign_in(browser, address, keyed_server["keys"]["rev1"])
    ctx2, p2 = sign_in(browser, address, keyed_server["keys"]["rev2"], locale="en-US")
    for p in (p1, p2):
        p.goto(f"http://{address}/review/dispute?id={second}")
    # The first reviewer upholds it.
    p1.fill("#reason", "binding was in protection")
    p1.click("#preview")
    p1.click("#confirm")
    p1.wait_for_url("**done=1")
    # The second still has the old form: refused, the new state shown, nothing changed.
    p2.check("#o-reassign")
    p2.fill("#reason", "I think it was G000005")
    p2.click("#preview")
    assert "changed this dispute" in p2.locator("#error").inner_text()
    assert p2.locator("#status").inner_text() == "Upheld"
    assert "rev-li" in p2.locator("#resolved-by").inner_text()
    got = call(address, "Attribution/GetOwnership", {"orderId": "review-o1"}, keyed_server["keys"]["client"])
    assert got["ownerParty"] == "guide:G000001"
    ctx1.close()
    ctx2.close()


def test_forms_without_the_csrf_token_are_refused(keyed_server, browser):
    address = keyed_server["address"]
    ctx, page = sign_in(browser, address, keyed_server["keys"]["rev1"])
    cookie = next(c for c in ctx.cookies() if c["name"] == "lr_review")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    third = keyed_server["disputes"][2]["disputeId"]
    body = f"id={third}&outcome=uphold&reason=x&confirm=1&expected_owner=guide%3AG000001".encode()
    req = urllib.request.Request(
        f"http://{address}/review/resolve",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"lr_review={cookie['value']}"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    got = call(address, "Disputes/GetDispute", {"disputeId": third}, keyed_server["keys"]["rev1"])
    assert got["dispute"]["status"] == "DISPUTE_OPEN"
    ctx.close()
