"""Airflow 3.0: the Videos app swaps the UI's token for a cookie of its own, verified by Airflow's own auth.

The routes' tests run on Airflow 3.0 only (``.ci/test-airflow.sh 3.0.6`` runs them; 3.1+ read
the UI's cookie themselves and install nothing, which the last tests check). Tokens are real JWTs
from Airflow's auth manager (``conftest.py``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tests.ui.conftest import PROMPTS, VideoDB
from veo_provider import compat
from veo_provider.ui import UI_PREFIX, browser_session, player_path
from veo_provider.ui.browser_session import COOKIE_NAME, SIGN_IN_CSP, render_sign_in

SESSION = f"{UI_PREFIX}/session"
PLAYER = player_path("videos_dag", "manual__videos", "clips", 0)
STREAM = f"{UI_PREFIX}/api/dags/videos_dag/dagRuns/manual__videos/taskInstances/clips/0/video"
LIST = f"{UI_PREFIX}/api/dags/videos_dag/dagRuns/manual__videos/videos"

on_3_0 = pytest.mark.skipif(compat.API_READS_SESSION_COOKIE, reason="Airflow 3.1+ read the UI's own cookie")


class _Tags(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def token(user: str, expires_in: int | None = None) -> str:
    """A JWT from Airflow's own token generator (``expires_in`` < 0: already expired)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    kw: dict[str, Any] = {} if expires_in is None else {"expiration_time_in_seconds": expires_in}
    return str(get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user, role="viewer"), **kw))


@pytest.fixture
def browser(client: TestClient) -> Iterator[TestClient]:
    """A client of its own (its own cookie jar), on the same app."""
    with TestClient(client.app) as c:
        yield c


def sign_in(browser: TestClient, jwt: str) -> Any:
    return browser.post(SESSION, headers={"Authorization": f"Bearer {jwt}"})


# ------------------------------------------------------------------------- the page (pure)


def test_the_sign_in_page_runs_only_its_own_script_and_escapes_what_it_is_given() -> None:
    html = render_sign_in('/x"><script>alert(1)</script>', "/")
    parsed = _Tags(html)
    assert [t for t, _ in parsed.tags].count("script") == 1 and "<script>alert" not in html
    [script] = parsed.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in SIGN_IN_CSP and "unsafe-inline" not in SIGN_IN_CSP
    assert "connect-src 'self'" in SIGN_IN_CSP and "default-src 'none'" in SIGN_IN_CSP
    [note] = [a for t, a in parsed.tags if a.get("id") == "veo-sign-in"]
    assert note["data-session"] == '/x"><script>alert(1)</script>' and note["data-token-key"] == "token"
    assert "Authorization" in script and "localStorage" in script and "fetch(" in script


# ------------------------------------------------------------------------------ refusals


@on_3_0
def test_without_credentials_the_api_is_401_and_the_player_page_is_the_sign_in_page(browser: TestClient) -> None:
    for path in (LIST, STREAM):
        r = browser.get(path)
        assert r.status_code == 401 and r.json() == {"detail": "Not authenticated"}
    r = browser.get(PLAYER)
    assert r.status_code == 401 and r.headers["content-security-policy"] == SIGN_IN_CSP
    assert r.headers["cache-control"] == "private, no-store"
    assert PROMPTS[0] not in r.text and "<video" not in r.text and "job-clips-0" not in r.text
    [note] = [a for t, a in _Tags(r.text).tags if a.get("id") == "veo-sign-in"]
    assert note["data-session"] == SESSION


@on_3_0
@pytest.mark.parametrize(
    "how",
    [
        {},  # nothing
        {"headers": {"Authorization": "Basic dmlld2VyOnZpZXdlcg=="}},
        {"data": {"token": "TOKEN"}},  # never from a form: another site could post one
        {"params": {"token": "TOKEN"}},
        {"cookies": {COOKIE_NAME: "TOKEN"}},  # the cookie cannot renew itself
    ],
)
def test_the_session_route_takes_a_token_only_from_the_authorization_header(
    browser: TestClient, video_db: VideoDB, how: dict[str, Any]
) -> None:
    real = video_db.tokens["viewer"]
    how = {k: {n: (real if v == "TOKEN" else v) for n, v in d.items()} for k, d in how.items()}
    cookies = how.pop("cookies", None)
    if cookies:
        browser.cookies.update(cookies)
    r = browser.post(SESSION, **how)
    assert r.status_code == 401 and "set-cookie" not in r.headers


@on_3_0
def test_a_forged_or_expired_token_gets_no_cookie(browser: TestClient) -> None:
    forged = sign_in(browser, "not.a.jwt")
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    expired = sign_in(browser, token("viewer", expires_in=-3600))
    assert expired.status_code == 401 and "set-cookie" not in expired.headers


@on_3_0
@pytest.mark.parametrize("cookie", ["not.a.jwt", "expired"])
def test_a_cookie_that_does_not_verify_is_no_credential(browser: TestClient, cookie: str) -> None:
    browser.cookies.set(COOKIE_NAME, token("viewer", expires_in=-3600) if cookie == "expired" else cookie)
    page = browser.get(PLAYER)
    assert page.status_code == 401 and "veo-sign-in" in page.text and PROMPTS[0] not in page.text
    assert browser.get(STREAM).status_code == 401


@on_3_0
def test_with_the_cookie_a_user_who_may_not_read_the_dag_still_gets_nothing_of_it(browser: TestClient) -> None:
    assert sign_in(browser, token("outsider")).status_code == 204
    for path in (PLAYER, STREAM, LIST):
        r = browser.get(path)
        assert r.status_code == 403, path
        assert "clip" not in r.text and "job-" not in r.text and b"ftyp" not in r.content
    assert browser.get(player_path("private_dag", "manual__private", "secret", -1)).status_code == 200


@on_3_0
def test_the_override_is_on_the_videos_app_only_never_on_airflows(browser: TestClient) -> None:
    """A route of the host app that depends on Airflow's get_user does not take our cookie."""
    get_user = compat.airflow_get_user()
    host = browser.app
    assert isinstance(host, FastAPI) and get_user not in host.dependency_overrides
    host.add_api_route("/probe", lambda user=Depends(get_user): {"user": user.get_name()}, methods=["GET"])  # noqa: B008
    try:
        assert sign_in(browser, token("viewer")).status_code == 204
        browser.cookies.set(COOKIE_NAME, browser.cookies[COOKIE_NAME], path="/")  # sent everywhere
        assert browser.get("/probe").status_code == 401
        assert browser.get(LIST).status_code == 200
    finally:
        host.router.routes.pop()


# ------------------------------------------------------------------------------ the session


@on_3_0
def test_the_ui_token_becomes_an_httponly_strict_cookie_of_the_videos_app_that_expires_with_it(
    browser: TestClient,
) -> None:
    r = sign_in(browser, token("viewer", expires_in=600))
    assert r.status_code == 204 and r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
    assert attrs["path"] == f"Path={UI_PREFIX}" and "httponly" in attrs
    assert attrs["samesite"].lower() == "samesite=strict" and "secure" not in attrs  # http here
    max_age = int(re.sub(r"\D", "", attrs["max-age"]))
    assert 590 <= max_age <= 600


@on_3_0
def test_with_the_cookie_the_player_page_plays_and_the_stream_seeks(browser: TestClient) -> None:
    assert sign_in(browser, token("viewer")).status_code == 204
    page = browser.get(PLAYER)
    assert page.status_code == 200 and PROMPTS[0] in page.text and "veo-sign-in" not in page.text
    [video] = [a for t, a in _Tags(page.text).tags if t == "video"]
    assert video["src"] == STREAM
    assert browser.get(STREAM, headers={"Range": "bytes=0-9"}).status_code == 206
    assert browser.get(LIST).status_code == 200


@on_3_0
def test_an_explicit_header_wins_over_the_cookie(browser: TestClient) -> None:
    assert sign_in(browser, token("viewer")).status_code == 204
    r = browser.get(LIST, headers={"Authorization": f"Bearer {token('outsider')}"})
    assert r.status_code == 403


# ------------------------------------------------------------------------------ 3.1+


@pytest.mark.skipif(not compat.API_READS_SESSION_COOKIE, reason="on Airflow 3.0 the route exists")
def test_on_3_1_and_later_the_videos_app_adds_no_session_route_and_overrides_nothing(client: TestClient) -> None:
    from veo_provider.ui.app import create_ui_app

    app = create_ui_app()
    assert not app.dependency_overrides
    assert "open_session" not in {getattr(r, "name", None) for r in app.routes}
    assert browser_session.SignInNeeded not in app.exception_handlers
    with pytest.raises(RuntimeError, match=r"3\.1\+"):
        compat.airflow_get_user()
