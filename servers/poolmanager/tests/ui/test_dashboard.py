"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a
live `poolmanager serve` on the real Docker engine.

The tests run in order and share one server and one browser tab, as an operator's
session would: log in, add a host, add a blueprint, fill, watch clusters appear, see
an apply made through the API arrive by itself, stop and start a node, release, see
the history, lose the event stream and get it back, delete the host.

Environment (scripts/test-ui.sh sets it): PM_SERVER (the poolmanager binary),
POOLMANAGER_TEST_DOCKER (the engine), POOLMANAGER_TEST_IMAGE, PM_CHROMIUM (the
browser), PM_SCREENSHOTS (where the page screenshots go; none when unset), PM_WORKDIR
(where the server keeps its database and log; a new temporary directory when unset).
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

ADMIN = "ui-admin-" + secrets.token_hex(8)
ENGINE = os.environ.get("POOLMANAGER_TEST_DOCKER", "")
IMAGE = os.environ.get("POOLMANAGER_TEST_IMAGE", "poolmanager/testnode:latest")
SUFFIX = secrets.token_hex(3)
HOST = f"ui-{SUFFIX}"
BLUEPRINT = f"ui-bp-{SUFFIX}"
USER = f"ui-user-{SUFFIX}"
SHOTS = Path(os.environ["PM_SCREENSHOTS"]) if os.environ.get("PM_SCREENSHOTS") else None

expect.set_options(timeout=30_000)


class Server:
    """`poolmanager serve` on a free port with a fresh SQLite file; restartable."""

    def __init__(self, binary: str, workdir: str):
        self.binary = binary
        self.workdir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = open(os.path.join(workdir, "server.log"), "ab")

    def start(self):
        env = dict(os.environ, POOLMANAGER_ADMIN_TOKEN=ADMIN, POOLMANAGER_RECONCILE_INTERVAL="2",
                   RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        env.pop("POOLMANAGER_CONFIG_FILE", None)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--database", f"sqlite://{self.workdir}/pool.db"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(150):
            try:
                urllib.request.urlopen(self.base + "/api/v1/health", timeout=1)
                return
            except OSError:
                assert self.proc.poll() is None, "the server stopped; see server.log"
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, method, path, body=None):
        """Calls the REST API with the admin token; answers (status, JSON)."""
        req = urllib.request.Request(
            self.base + "/api/v1" + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


@pytest.fixture(scope="module")
def server():
    if not ENGINE:
        pytest.skip("POOLMANAGER_TEST_DOCKER names no engine")
    given = os.environ.get("PM_WORKDIR")
    workdir = given or tempfile.mkdtemp(prefix="pm-ui.")
    server = Server(os.environ.get("PM_SERVER", "target/debug/poolmanager"), workdir)
    server.start()
    yield server
    # Whatever happened, the host goes, and with it every container the tests made.
    if server.proc.poll() is not None:
        server.start()
    status, page = server.api("GET", "/hosts")
    for host in page["items"] if status == 200 else []:
        server.api("DELETE", f"/hosts/{host['id']}?force=true")
    server.stop()
    if not given:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("PM_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, server) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="light")
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server.base + "/")
    yield page
    assert errors == [], f"the page threw: {errors}"


def shot(page: Page, name: str):
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("document.getElementById('toasts').replaceChildren()")
        page.wait_for_timeout(300)  # let a live redraw settle
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def login(page: Page, token: str = ADMIN):
    page.fill("#token", token)
    page.press("#token", "Enter")


def dialog(page: Page):
    return page.locator("dialog[open]")


def test_root_leads_to_the_login_form(page: Page, server):
    assert page.url == server.base + "/ui/"
    expect(page.locator("h1")).to_have_text("Log in to PoolManager")
    expect(page.locator("#nav")).to_be_hidden()


def test_a_wrong_token_is_refused_with_a_message(page: Page):
    login(page, "not-the-token")
    expect(page.locator("#login-error")).to_contain_text("Wrong token")
    expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
    shot(page, "login")


def test_the_admin_token_logs_in(page: Page):
    login(page)
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#live")).to_have_text("Live")


def test_the_add_host_form_shows_the_servers_error_at_the_field(page: Page):
    page.click("#nav >> text=Hosts")
    page.click("#add-host")
    expect(dialog(page)).to_be_visible()
    page.fill("#f-name", HOST)
    page.select_option("#f-kind", "docker")
    page.fill("#f-endpoint", "unix:///nonexistent/docker.sock")
    page.fill("#f-capacity", "2")
    page.press("#f-endpoint", "Enter")  # forms submit on Enter
    expect(page.locator("#f-endpoint-error")).to_contain_text("unavailable")
    expect(page.locator("#f-endpoint")).to_have_attribute("aria-invalid", "true")
    expect(dialog(page)).to_be_visible()


def test_add_a_host(page: Page, server):
    page.fill("#f-endpoint", ENGINE)
    page.uncheck("#f-autofill")  # filled by hand below, to watch the progress
    page.click("dialog button[type=submit]")
    expect(dialog(page)).to_have_count(0)
    row = page.locator(f'tr[data-host="{HOST}"]')
    expect(row.locator(".badge")).to_have_text("active")
    expect(row).to_contain_text("0 / 2")


def test_a_taken_name_is_shown_at_the_name_and_esc_closes_the_form(page: Page):
    page.click("#add-host")
    page.fill("#f-name", HOST)
    page.fill("#f-endpoint", ENGINE)
    page.click("dialog button[type=submit]")
    expect(page.locator("#f-name-error")).to_contain_text("exists")
    page.keyboard.press("Escape")
    expect(dialog(page)).to_have_count(0)


def test_create_a_blueprint_from_the_json_editor(page: Page):
    page.click("#nav >> text=Blueprints")
    page.click("#new-blueprint")
    editor = page.locator("#blueprint-json")
    editor.fill('{"name": ')
    page.click("dialog button[type=submit]")
    expect(page.locator("#blueprint-json-error")).to_contain_text("Not valid JSON")
    nodes = [{"name": n, "image": IMAGE, "ports": {"web": "80/tcp"}} for n in ("vp0", "vp1")]
    editor.fill(json.dumps({"name": BLUEPRINT, "nodes": nodes, "api_port": "vp9.web"}, indent=2))
    page.click("dialog button[type=submit]")
    expect(page.locator("#blueprint-json-error")).to_contain_text("The server refused it")
    expect(page.locator("#blueprint-json-error")).to_contain_text("api_port")
    editor.fill(json.dumps({"name": BLUEPRINT, "labels": {"consensus_plugin": "pbft", "size": "2"},
                            "nodes": nodes, "api_port": "vp0.web", "max_applied": 5}, indent=2))
    editor.press("Control+Enter")
    expect(dialog(page)).to_have_count(0)
    row = page.locator(f'tr[data-blueprint="{BLUEPRINT}"]')
    expect(row).to_contain_text("vp0, vp1")
    expect(row.locator('[data-key="in-use"]')).to_have_text("0 / 5")
    shot(page, "blueprints")


def open_second_tab(browser, server) -> Page:
    """Another tab, logged in (the token is kept per tab), on the free clusters."""
    other = browser.new_page(viewport={"width": 1280, "height": 800})
    other.goto(server.base + "/ui/#/clusters?view=free")
    login(other)
    expect(other.locator("#live")).to_have_text("Live")
    other.evaluate("window.notReloaded = true")
    return other


@pytest.fixture(scope="module")
def watcher(browser, server):
    other = open_second_tab(browser, server)
    yield other
    other.close()


def test_fill_shows_its_progress_to_the_end_and_clusters_appear_live(page: Page, watcher: Page):
    page.click("#nav >> text=Hosts")
    page.click(f'button[aria-label="Fill {HOST}"]')
    progress = page.locator("tr.progress")
    expect(progress.locator("progress")).to_be_visible()
    expect(progress).to_contain_text("fill succeeded: 2 of 2", timeout=60_000)
    assert progress.locator("progress").evaluate("p => p.value === p.max && p.max === 2")
    expect(page.locator(f'tr[data-host="{HOST}"]')).to_contain_text("2 ready · 0 in use")
    expect(page.locator("#operations tbody tr").first).to_contain_text("succeeded")
    shot(page, "hosts")
    # The other tab, left on the free clusters, saw them come without a reload.
    expect(watcher.locator("#clusters tbody tr[data-status=ready]")).to_have_count(2)
    assert watcher.evaluate("window.notReloaded") is True


def test_an_apply_through_the_api_moves_a_cluster_to_in_use_by_itself(page: Page, watcher: Page, server):
    watcher.click('.tabs a[data-view="inuse"]')
    expect(watcher.locator(".empty")).to_contain_text("No cluster is in use")
    status, cluster = server.api("POST", "/apply", {
        "user_id": USER, "blueprint": BLUEPRINT, "metadata": {"ticket": "OPS-42"}, "ttl_seconds": 3600})
    assert status == 200, cluster
    row = watcher.locator(f'#clusters tr[data-cluster="{cluster["name"]}"]')
    expect(row.locator(".badge").first).to_have_text("applied")
    expect(row).to_contain_text(USER)
    expect(watcher.locator('.tabs a[data-view="inuse"] .count')).to_have_text("1")
    expect(watcher.locator('.tabs a[data-view="free"] .count')).to_have_text("1")
    assert watcher.evaluate("window.notReloaded") is True
    page.goto(watcher.url)
    expect(page.locator(f'#clusters tr[data-cluster="{cluster["name"]}"]')).to_be_visible()
    shot(page, "clusters")


def test_the_detail_shows_nodes_urls_owner_and_lease(page: Page):
    page.click("#clusters tbody a")
    expect(page.locator("#owner")).to_have_text(USER)
    expect(page.locator("#expires")).to_contain_text("in 59m")
    expect(page.locator("#metadata")).to_contain_text("OPS-42")
    for node in ("vp0", "vp1"):
        link = page.locator(f'[data-node="{node}"] a')
        expect(link).to_have_attribute("href", re.compile(r"^http://[\w.:-]+:\d+$"))
    shot(page, "cluster-detail")


def test_renew_the_lease(page: Page):
    name = page.locator("h1").inner_text().split()[0]
    page.get_by_role("button", name=f"Renew {name}").click()
    page.fill("#r-ttl", "7200")
    page.press("#r-ttl", "Enter")
    expect(dialog(page)).to_have_count(0)
    expect(page.locator("#expires")).to_contain_text(re.compile(r"in (1h 59m|2h 0m)"))


def test_stop_and_start_a_node(page: Page, server):
    node = page.locator('[data-node="vp0"]')
    node.get_by_role("button", name=re.compile("^Stop vp0 ")).click()
    expect(node.locator(".badge")).to_have_text("stopped")
    cluster_id = page.locator("dd.mono").inner_text()
    _, cluster = server.api("GET", f"/clusters/{cluster_id}")
    assert cluster["stopped_nodes"] == ["vp0"], cluster
    node.get_by_role("button", name=re.compile("^Start vp0 ")).click()
    expect(node.locator(".badge")).to_have_text("running")
    _, cluster = server.api("GET", f"/clusters/{cluster_id}")
    assert cluster["stopped_nodes"] == [], cluster


def test_release_and_see_the_history_row(page: Page):
    name = page.locator("h1").inner_text().split()[0]
    page.get_by_role("button", name=f"Release {name}").click()
    expect(page.locator("#owner")).to_have_text("free")
    page.click("#nav >> text=Clusters")
    page.click('.tabs a[data-view="released"]')
    row = page.locator(f'#leases tr[data-cluster="{name}"]')
    expect(row).to_contain_text(USER)
    expect(row).to_contain_text("release")
    expect(row.locator("time")).to_have_count(2)  # applied and released


def test_the_overview_counts_and_charts_it(page: Page):
    page.click("#nav >> text=Overview")
    page.select_option("select[data-key=range]", "hour")
    expect(page.locator("figcaption")).to_contain_text("1 applied, 1 released")
    expect(page.locator("svg.chart rect.applied")).to_have_count(1)
    expect(page.locator("table").first).to_contain_text(HOST)
    shot(page, "overview")


def test_the_overview_shows_an_apply_waiting_in_line(page: Page, server):
    # Labels no blueprint carries: nothing can serve it, so it waits its time out.
    answer = {}
    waiter = threading.Thread(target=lambda: answer.update(result=server.api("POST", "/apply", {
        "user_id": USER + "-w", "blueprint": BLUEPRINT, "labels": {"zone": "nowhere"}, "wait_seconds": 8})))
    waiter.start()
    deadline = time.monotonic() + 5
    while server.api("GET", "/stats")[1]["waiting"] != 1:
        assert time.monotonic() < deadline, "the apply did not start waiting"
        time.sleep(0.05)
    page.click("#nav >> text=Hosts")
    page.click("#nav >> text=Overview")
    expect(page.locator("[data-key=waiting]")).to_have_text("1")
    waiter.join(15)
    status, body = answer["result"]
    assert status == 503 and body["code"] == "pool_exhausted", body
    assert "waited 8" in body["message"], body


def test_set_a_ready_buffer_and_see_it_against_its_target(page: Page, server):
    page.click("#nav >> text=Blueprints")
    page.click(f'tr[data-blueprint="{BLUEPRINT}"] a')
    page.click("#edit-policies")
    page.fill("#f-min_ready", "3")
    page.fill("#f-max_total", "2")
    page.press("#f-min_ready", "Enter")
    expect(page.locator("#f-min_ready-error")).to_contain_text("above max_total")
    # Two clusters are ready (the host was filled by hand): a buffer of two holds them.
    page.fill("#f-min_ready", "2")
    page.fill("#f-max_total", "")
    page.press("#f-min_ready", "Enter")
    expect(dialog(page)).to_have_count(0)
    expect(page.locator("#ready-buffer")).to_have_text("2")
    expect(page.locator("#max-total")).to_have_text("no limit")
    _, blueprint = server.api("GET", f"/blueprints/{BLUEPRINT}")
    assert blueprint["min_ready"] == 2 and "max_total" not in blueprint, blueprint
    page.click("#nav >> text=Overview")
    expect(page.locator(f'tr[data-blueprint="{BLUEPRINT}"] [data-key=ready-target]')).to_have_text("2 / 2")
    shot(page, "overview-buffer")
    # Emptied, the field removes the buffer again.
    page.click(f'tr[data-blueprint="{BLUEPRINT}"] a')
    page.click("#edit-policies")
    page.fill("#f-min_ready", "")
    page.press("#f-max_applied", "Enter")
    expect(dialog(page)).to_have_count(0)
    expect(page.locator("#ready-buffer")).to_contain_text("none")
    _, blueprint = server.api("GET", f"/blueprints/{BLUEPRINT}")
    assert "min_ready" not in blueprint and blueprint["max_applied"] == 5, blueprint


def test_choose_where_a_blueprint_goes_and_what_a_release_does(page: Page, server):
    placed = f"{BLUEPRINT}-placed"
    probe = {"http": {"port": "web", "path": "/health"}, "period_seconds": 2}
    status, body = server.api("POST", "/blueprints", {
        "name": placed, "nodes": [{"name": "vp0", "image": "poolmanager/testnode:latest",
                                   "ports": {"web": "80/tcp"}, "readiness": probe}]})
    assert status == 201, body
    page.click("#nav >> text=Blueprints")
    page.click(f'tr[data-blueprint="{placed}"] a')
    expect(page.locator("#host-selector")).to_have_text("any host")
    expect(page.locator("[data-key=readiness-vp0]")).to_have_text("GET /health on web, every 2 s, 60 s to start")
    expect(page.locator("#release-mode")).to_contain_text("recreate")
    page.click("#edit-policies")
    page.fill("#f-host_selector", "zone")
    page.press("#f-host_selector", "Enter")
    expect(page.locator("#f-host_selector-error")).to_contain_text("is not KEY=VALUE")
    page.fill("#f-host_selector", "zone=eu, disk=ssd")
    page.select_option("#f-placement", "packed")
    page.select_option("#f-release_mode", "reset")
    page.fill("#f-buffer_windows", "[{\"days\": [\"mon\"], \"from\": \"8:00\"}]")
    page.press("#f-host_selector", "Enter")
    expect(page.locator("dialog .form-error")).to_contain_text("time of day HH:MM")
    page.fill("#f-buffer_windows", '[{"days": ["mon", "fri"], "from": "08:00", "until": "18:30", "min_ready": 5}]')
    page.press("#f-host_selector", "Enter")
    expect(dialog(page)).to_have_count(0)
    expect(page.locator("#host-selector")).to_have_text("disk=ssd, zone=eu")
    expect(page.locator("#placement")).to_contain_text("packed")
    expect(page.locator("#release-mode")).to_contain_text("reset")
    expect(page.locator("#buffer-windows")).to_have_text("mon, fri 08:00–18:30 UTC: keep 5")
    _, blueprint = server.api("GET", f"/blueprints/{placed}")
    assert blueprint["host_selector"] == {"zone": "eu", "disk": "ssd"}, blueprint
    assert (blueprint["placement"], blueprint["release_mode"]) == ("packed", "reset"), blueprint
    assert blueprint["buffer_windows"] == [
        {"days": ["mon", "fri"], "from": "08:00", "until": "18:30", "min_ready": 5}], blueprint
    shot(page, "blueprint-placement")
    assert server.api("DELETE", f"/blueprints/{placed}")[0] == 204


def test_make_a_new_version_and_watch_the_free_clusters_roll_to_it(page: Page, server):
    _, held = server.api("GET", f"/clusters?blueprint={BLUEPRINT}&status=applied")
    for c in held["items"]:
        assert server.api("POST", "/release", {"cluster_id": c["id"]})[0] == 200
    page.click("#nav >> text=Blueprints")
    page.click(f'tr[data-blueprint="{BLUEPRINT}"] a')
    expect(page.locator("#version")).to_contain_text("1, made")
    expect(page.locator("#rollout")).to_contain_text("at most 30 a minute")
    page.click("#edit-policies")
    page.fill("#f-rollout_per_minute", "0")
    page.press("#f-rollout_per_minute", "Enter")
    expect(page.locator("#f-rollout_per_minute-error")).not_to_be_empty()
    page.fill("#f-rollout_per_minute", "120")
    page.press("#f-rollout_per_minute", "Enter")
    expect(dialog(page)).to_have_count(0)
    expect(page.locator("#rollout")).to_contain_text("at most 120 a minute")
    page.click("#new-version")
    editor = page.locator("#version-json")
    expect(editor).to_have_value(re.compile(r'"name": "vp0"'))
    nodes = [{"name": n, "image": IMAGE, "ports": {"web": "80/tcp"}, "env": {"RELEASE": "2"}}
             for n in ("vp0", "vp1")]
    editor.fill(json.dumps({"nodes": nodes + nodes[:1]}))
    page.click("dialog >> text=Make the version")
    expect(page.locator("#version-json-error")).to_contain_text("Two nodes are named vp0")
    editor.fill(json.dumps({"nodes": nodes, "api_port": "vp0.nope"}))
    page.click("dialog >> text=Make the version")
    expect(page.locator("#version-json-error")).to_contain_text("400 invalid_input")
    editor.fill(json.dumps({"nodes": nodes, "api_port": "vp0.web"}))
    page.click("dialog >> text=Make the version")
    expect(dialog(page)).to_have_count(0)
    expect(page.locator("#version")).to_contain_text("2, made")
    expect(page.locator('#versions tr[data-version="2"] td').first).to_have_text("2 (current)")
    # The reconciler (every 2 s here) makes the free clusters anew at version 2, and
    # the page follows the events by itself.
    expect(page.locator("#rollout-summary")).to_have_text("Every cluster runs version 2.", timeout=60_000)
    expect(page.locator('#versions tr[data-version="1"]')).to_have_count(0)
    _, clusters = server.api("GET", f"/clusters?blueprint={BLUEPRINT}")
    assert clusters["items"] and all(c["blueprint_version"] == 2 for c in clusters["items"]), clusters
    _, rollout = server.api("GET", f"/blueprints/{BLUEPRINT}/rollout")
    assert rollout["complete"] and rollout["versions"][0]["version"] == 2, rollout
    # The next pass drops version 1, which no cluster runs any more.
    deadline = time.monotonic() + 30
    while True:
        _, blueprint = server.api("GET", f"/blueprints/{BLUEPRINT}")
        if blueprint["earlier_versions"] == [] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert blueprint["api_port"] == "vp0.web" and blueprint["earlier_versions"] == [], blueprint
    shot(page, "blueprint-versions")


def test_a_blueprint_whose_creations_fail_shows_it_backs_off(page: Page, server):
    # An image no registry here has, on a host of its own: its three creations fail.
    status, host = server.api("POST", "/hosts", {
        "name": f"{HOST}-broken", "endpoint": ENGINE, "capacity": 3, "autofill": False})
    assert status == 201, host
    broken = f"{BLUEPRINT}-broken"
    status, body = server.api("POST", "/blueprints", {
        "name": broken, "nodes": [{"name": "vp0", "image": "poolmanager/missing:latest"}]})
    assert status == 201, body
    status, body = server.api("POST", f"/hosts/{host['id']}/fill", {"blueprint": broken})
    assert status == 202, body
    deadline = time.monotonic() + 60
    while server.api("GET", f"/operations/{body['operation_id']}")[1]["status"] == "running":
        assert time.monotonic() < deadline, "the fill did not end"
        time.sleep(0.2)
    page.click("#nav >> text=Hosts")
    page.click("#nav >> text=Overview")
    badge = page.locator(f'tr[data-blueprint="{broken}"] [data-key=backoff]')
    expect(badge).to_have_text("backing off: 3 failed")
    expect(badge).to_have_attribute("title", re.compile("poolmanager/missing"))
    shot(page, "overview-backoff")
    assert server.api("DELETE", f"/hosts/{host['id']}?force=true")[0] == 204
    assert server.api("DELETE", f"/blueprints/{broken}")[0] == 204


def test_edit_a_host_checks_the_fields_first(page: Page):
    page.click("#nav >> text=Hosts")
    page.click(f'button[aria-label="Edit {HOST}"]')
    expect(page.locator("#f-endpoint")).to_be_disabled()
    page.fill("#f-public_address", "not an address!")
    page.press("#f-capacity", "Enter")
    expect(page.locator("#f-public_address-error")).not_to_be_empty()
    page.fill("#f-public_address", "")
    page.fill("#f-capacity", "3")
    page.fill("#f-labels", "zone=lab")
    page.press("#f-capacity", "Enter")
    expect(dialog(page)).to_have_count(0)
    expect(page.locator(f'tr[data-host="{HOST}"]')).to_contain_text("/ 3")


def test_create_a_cluster_on_a_chosen_host(page: Page):
    page.click("#nav >> text=Clusters")
    page.click("#new-cluster")
    page.select_option("#c-host", label=HOST)
    page.select_option("#c-blueprint", BLUEPRINT)
    page.fill("#c-name", f"{HOST}-by-hand")
    page.press("#c-name", "Enter")
    expect(dialog(page)).to_have_count(0)
    page.click('.tabs a[data-view="all"]')
    row = page.locator(f'#clusters tr[data-cluster="{HOST}-by-hand"]')
    expect(row.locator(".badge").first).to_have_text("ready", timeout=60_000)


def test_cluster_lists_page_and_sort(page: Page, server):
    # Many clusters at once come from a simulated engine; the views are the same.
    status, sim = server.api("POST", "/hosts", {
        "name": f"{HOST}-sim", "kind": "sim", "endpoint": f"sim://{HOST}", "capacity": 60})
    assert status == 201, sim
    page.goto(f"{server.base}/ui/#/clusters?view=all&host_id={sim['id']}")
    expect(page.locator(".pager")).to_contain_text("1–25 of 60", timeout=30_000)
    page.click(".pager >> text=Next")
    expect(page.locator(".pager")).to_contain_text("26–50 of 60")
    # Sorting is the server's: a new order starts at page 1 and pages follow it.
    status, listed = server.api("GET", f"/clusters?host_id={sim['id']}&limit=100")
    assert status == 200 and listed["total"] == 60, listed
    names = sorted(c["name"] for c in listed["items"])
    header = page.locator("#clusters th", has_text="Name")
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(page.locator(".pager")).to_contain_text("1–25 of 60")
    expect(page.locator("#clusters tbody tr").first).to_have_attribute("data-cluster", names[0])
    page.locator("#clusters th", has_text="Name").locator("button").click()
    expect(page.locator("#clusters th", has_text="Name")).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#clusters tbody tr").first).to_have_attribute("data-cluster", names[-1])
    page.click(".pager >> text=Next")
    expect(page.locator("#clusters tbody tr").first).to_have_attribute("data-cluster", names[-26])
    assert "sort=name" in page.url and "dir=desc" in page.url
    assert server.api("DELETE", f"/hosts/{sim['id']}?force=true")[0] == 204


def test_a_lost_stream_says_so_and_comes_back(page: Page, server):
    server.stop()
    expect(page.locator("#reconnecting")).to_contain_text("reconnecting")
    expect(page.locator("#live")).to_have_text("Offline")
    server.start()
    expect(page.locator("#reconnecting")).to_be_hidden(timeout=30_000)
    expect(page.locator("#live")).to_have_text("Live")


def test_the_theme_toggles_between_auto_light_and_dark(page: Page):
    html = page.locator("html")
    page.click("#theme")
    expect(html).to_have_attribute("data-theme", "light")
    page.click("#theme")
    expect(html).to_have_attribute("data-theme", "dark")
    page.click("#theme")
    expect(page.locator("#theme")).to_have_text("Theme: auto")


def test_delete_the_host_after_confirming(page: Page, server):
    page.click("#nav >> text=Hosts")
    page.click(f'button[aria-label="Delete {HOST}"]')
    expect(dialog(page)).to_contain_text(f"Delete {HOST}?")
    page.click("dialog button[type=submit]")
    expect(page.locator(f'tr[data-host="{HOST}"]')).to_have_count(0, timeout=90_000)
    _, clusters = server.api("GET", "/clusters")
    assert clusters["total"] == 0, clusters


def test_logout_forgets_the_token(page: Page):
    page.click("#logout")
    expect(page.locator("#login-error")).to_have_text("Logged out.")
    assert page.evaluate("sessionStorage.length") == 0
