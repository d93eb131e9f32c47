"""The dashboard in a real headless Chromium (the OS package), driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from rlft.serve import create_app

from .conftest import ADMIN, KEY_A, KEY_B, METHOD, live_server, options, project, rows, wait_until

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_dashboard_shows_a_running_jobs_curve_growing(tmp_path: Path) -> None:
    # Far more steps than the test can see: the job is still running however slow the machine is.
    folder = project(tmp_path / "p", steps=100_000)
    app = create_app(options(folder, poll_interval=0.25))
    with live_server(app) as url:
        auth = {"Authorization": f"Bearer {KEY_A}"}
        with httpx.Client(base_url=url, headers=auth) as api:
            file_id = api.post(
                "/v1/files", files={"file": ("t.jsonl", rows())}, data={"purpose": "fine-tune"}
            ).json()["id"]
            job = api.post(
                "/v1/fine_tuning/jobs",
                json={"model": "fake-model", "training_file": file_id, "method": METHOD},
            ).json()

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page()
                page.goto(url + "/")
                # A wrong key is refused on the login form; the right one sets a cookie.
                page.fill("#key", "sk-wrong-key-000")
                page.click("#login")
                assert "wrong API key" in page.inner_text("#login-error")
                page.fill("#key", KEY_A)
                page.click("#login")
                page.wait_for_selector("#jobs")
                cookies = {c["name"]: c for c in page.context.cookies()}
                assert cookies["rlft_session"]["httpOnly"]
                assert job["id"] in page.inner_text("#jobs")

                page.click(f"a[href='/jobs/{job['id']}']")
                page.wait_for_selector("#curve")
                start = int(page.get_attribute("#curve", "data-train-points") or 0)
                # The chart fragment refreshes in place while the job runs: wait for new points.
                page.wait_for_function(
                    f"document.querySelector('#curve').dataset.trainPoints >= {start + 3}",
                    timeout=60_000,
                )
                grown = page.locator("#curve circle.train").count()
                assert grown >= start + 3
                assert page.inner_text("#status") in ("running", "succeeded")
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 1000 and shot.read_bytes()[:4] == b"\x89PNG"
            finally:
                browser.close()


def test_dashboard_needs_a_login(tmp_path: Path) -> None:
    app = create_app(options(project(tmp_path / "p")))
    with live_server(app) as url, httpx.Client(base_url=url) as anonymous:
        home = anonymous.get("/")
        assert home.status_code == 200 and "<form method='post' action='/login'>" in home.text
        assert "jobs" not in home.text.lower().split("<body>")[1].split("form")[0]
        chart = anonymous.get("/dashboard/jobs/rlft-x/chart")
        assert chart.status_code == 401
        page = anonymous.get("/jobs/rlft-x", follow_redirects=False)
        assert page.status_code == 303
    with (
        live_server(app) as url,
        httpx.Client(base_url=url, cookies={"rlft_session": "made-up"}) as forged,
    ):
        assert "action='/login'" in forged.get("/").text


def test_the_dashboard_shows_each_key_its_own_jobs(tmp_path: Path) -> None:
    app = create_app(options(project(tmp_path / "p", steps=50), poll_interval=3600))
    with live_server(app) as url:
        auth = {"Authorization": f"Bearer {KEY_A}"}
        with httpx.Client(base_url=url, headers=auth) as api:
            file_id = api.post(
                "/v1/files", files={"file": ("t.jsonl", rows())}, data={"purpose": "fine-tune"}
            ).json()["id"]
            job_id = api.post(
                "/v1/fine_tuning/jobs",
                json={"model": "m", "training_file": file_id, "method": METHOD},
            ).json()["id"]
        for key, sees in ((KEY_A, True), (KEY_B, False), (ADMIN, True)):
            with httpx.Client(base_url=url, follow_redirects=True) as browser:
                home = browser.post("/login", data={"key": key})
                assert home.status_code == 200 and "<table id='jobs'>" in home.text
                assert (job_id in home.text) is sees
                page = browser.get(f"/jobs/{job_id}")
                assert page.status_code == (200 if sees else 404)
                hostile = browser.get("/jobs/<img src=x onerror=alert(1)>")
                assert hostile.status_code == 404 and "<img" not in hostile.text
                after = browser.post("/logout")
                assert "action='/login'" in after.text and job_id not in after.text


def test_a_guard_trip_pauses_the_job_and_shows_as_an_alert(tmp_path: Path) -> None:
    from rlft.guards import RewardGapGuard

    gamed = [(0.3, 0.3), (0.5, 0.25), (0.7, 0.2), (0.9, 0.15), (0.95, 0.1), (0.97, 0.05)]
    script = "".join(
        f"[[fake.script]]\ntrain_reward_mean = {t}\nvalid_reward_mean = {v}\n" for t, v in gamed
    )
    folder = project(tmp_path / "p", extra=script)
    guard = RewardGapGuard(threshold=0.2, evaluations=2)
    app = create_app(options(folder, guards=(guard,)))
    with live_server(app) as url:
        auth = {"Authorization": f"Bearer {KEY_A}"}
        with httpx.Client(base_url=url, headers=auth) as api:
            file_id = api.post(
                "/v1/files", files={"file": ("t.jsonl", rows())}, data={"purpose": "fine-tune"}
            ).json()["id"]
            job_id = api.post(
                "/v1/fine_tuning/jobs",
                json={"model": "m", "training_file": file_id, "method": METHOD},
            ).json()["id"]
            wait_until(
                lambda: api.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "paused"
            )
        with httpx.Client(base_url=url, follow_redirects=True) as browser:
            browser.post("/login", data={"key": KEY_A})
            page = browser.get(f"/jobs/{job_id}").text
        alerts = page.split("<ul id='alerts'>")[1].split("</ul>")[0]
        assert "reward_gap" in alerts and "paused" in alerts
