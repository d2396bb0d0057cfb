"""End-to-end checks in headless Chromium: Swagger UI with a bearer token, and the Django admin."""
import json
import re
import urllib.request
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 15_000


@pytest.fixture
def open_page(live_server, transactional_db):
    """Open a fresh Chromium page; use it only after the test has written its data.

    Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls while one runs,
    so the test creates its rows first and then enters `with open_page() as page:`.
    """

    @contextmanager
    def _open():
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(base_url=live_server.url)
                context.set_default_timeout(STEP_TIMEOUT_MS)
                context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
                page = context.new_page()
                yield page
                context.close()
            finally:
                browser.close()

    return _open


def obtain_access_token(base_url: str, username: str, password: str) -> str:
    request = urllib.request.Request(
        f"{base_url}/api/v1/auth/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 200
        return json.load(response)["access"]


def test_swagger_ui_calls_me_with_a_bearer_token(live_server, open_page):
    user = UserFactory()
    token = obtain_access_token(live_server.url, user.username, PASSWORD)

    with open_page() as page:
        page.goto("/swagger/")

        page.get_by_role("button", name="Authorize").first.click()
        dialog = page.locator(".modal-ux")
        expect(dialog).to_be_visible()
        dialog.get_by_label("Value:").fill(f"Bearer {token}")
        # The dialog's submit button reads "Authorize" but is labelled "Apply credentials" for assistive tech.
        dialog.locator(".auth-btn-wrapper button.authorize").click()
        expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
        dialog.get_by_role("button", name="Close", exact=True).click()
        expect(dialog).to_be_hidden()

        operation = page.locator(".opblock.opblock-get").filter(
            has=page.locator('.opblock-summary-path[data-path="/api/v1/auth/me/"]')
        )
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.get_by_role("button", name="Execute").click()

        live_response = operation.locator(".live-responses-table .response").first
        expect(live_response.locator(".response-col_status")).to_have_text(re.compile(r"^\s*200\b"))
        body = live_response.locator(".response-col_description pre").first
        expect(body).to_contain_text(f'"username": "{user.username}"')
        expect(body).to_contain_text(f'"email": "{user.email}"')


def test_admin_lists_users_after_logging_in(open_page):
    admin = User.objects.create_superuser(username="boss", email="boss@example.com", password=PASSWORD)
    member = UserFactory()

    with open_page() as page:
        page.goto("/admin/")
        expect(page).to_have_url(re.compile(r"/admin/login/"))
        page.locator("#id_username").fill(admin.username)
        page.locator("#id_password").fill(PASSWORD)
        page.locator("#login-form [type=submit]").click()
        expect(page.locator("#user-tools")).to_contain_text(admin.username, ignore_case=True)

        page.goto("/admin/accounts/user/")
        results = page.locator("#result_list")
        expect(results).to_be_visible()
        for username in (admin.username, member.username):
            expect(results.locator("tbody th.field-username").get_by_text(username, exact=True)).to_be_visible()
