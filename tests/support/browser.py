"""Steps the browser tests share (Playwright, Debian's Chromium): submitting a form, checking it saved,
signing in to the sandbox EHR and launching the app from it. The browser itself, pages, axe-core and
screenshots are ``tests/app/conftest.py``'s fixtures and :mod:`tests.support.app`."""

from __future__ import annotations


def submit(where, button: str) -> None:
    """Press a form's button in a page or frame and wait for the page it leads to (a POST answered by
    303 + GET, or a redraw)."""
    with where.expect_navigation():
        where.get_by_role("button", name=button).click()


def saved(where, message: str) -> None:
    """The page says ``message``; otherwise fail with the error summary it shows instead."""
    problems = where.locator(".nhsuk-error-summary")
    assert message in where.content(), (problems.inner_text() if problems.count() else "") or where.url


def sign_in_to_ehr(page, sandbox_origin: str, user: str = "clinician") -> None:
    page.goto(sandbox_origin + "/ehr/")
    page.request.post(sandbox_origin + "/ehr/user", form={"user": user}, max_redirects=0)


def ehr_launch(page, sandbox_origin: str, patient_id: str, user: str = "clinician", timeout: float = 30000):
    """A real EHR launch: sign in to the sandbox EHR, open the young person, press Launch THRIVE and
    approve the scopes if the sandbox asks. Returns the app's iframe and its launch URL prefix."""
    sign_in_to_ehr(page, sandbox_origin, user)
    page.goto(f"{sandbox_origin}/ehr/patients/{patient_id}")
    page.get_by_role("button", name="Launch THRIVE", exact=True).click()
    frame = page.wait_for_selector("iframe#smart-app").content_frame()
    frame.wait_for_selector("h1:has-text('Summary'), button[value=approve]", timeout=timeout)
    if frame.locator("button[value=approve]").count():
        frame.click("button[value=approve]")
        frame.wait_for_selector("h1:has-text('Summary')", timeout=timeout)
    return frame, frame.url.rsplit("/summary", 1)[0]


def shared_record_loaded(frame, timeout: float = 30000) -> None:
    """Wait until the Summary no longer says the shared record is still loading: the read the launch
    started finished and the page's script reloaded it (smart_app/summary/shared_history.py)."""
    frame.wait_for_selector("h1:has-text('Summary')", timeout=timeout)
    frame.locator("#shared-record-loading").wait_for(state="detached", timeout=timeout)
    frame.wait_for_selector("h1:has-text('Summary')", timeout=timeout)
