"""The Videos app's own browser session on Airflow 3.0: the UI's login token as a cookie scoped to ``/veo-ui``.

Airflow 3.0's api-server reads a credential only from the ``Authorization`` header, and 3.0's UI
keeps its login token in ``localStorage``: a browser that follows the extra link to the player
page (or plays its ``<video src>``) sends none. So, on 3.0 only (``compat.API_READS_SESSION_COOKIE``
false, ``install`` called by ``app.create_ui_app``):

- the player page asked without a credential answers 401 with a sign-in page whose one script
  (allowed by its hash) reads the UI's token from ``localStorage``, POSTs it in the
  ``Authorization`` header to ``/veo-ui/session``, and reloads the page;
- ``POST /veo-ui/session`` verifies that token with Airflow's own ``get_user`` and sets it as an
  HttpOnly, SameSite=Strict cookie scoped to this app's path, expiring with the token;
- Airflow's ``get_user`` is overridden on this app only (never on Airflow's): it takes the header,
  else that cookie, and verifies either as Airflow does. Per-DAG access stays with
  ``requires_access_dag``, so the cookie grants nothing the token did not.

The token is taken only from a header, never from a form or a query: a page of another site can
neither send it (a cross-site request cannot set ``Authorization`` without CORS) nor read the
cookie (HttpOnly), nor send it along (SameSite=Strict).
"""

from __future__ import annotations

import base64
import hashlib
import time
from html import escape
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security.utils import get_authorization_scheme_param

from veo_provider import compat
from veo_provider.ui import UI_PREFIX
from veo_provider.ui.player import HEADERS as PAGE_HEADERS

__all__ = ["COOKIE_NAME", "SESSION_ROUTE", "SIGN_IN_CSP", "install", "render_sign_in"]

#: The cookie holding the token (not Airflow's ``_token``, which 3.0's UI deletes on sight).
COOKIE_NAME = "veo_ui_token"
#: Inside the Videos app: where the sign-in page sends the token.
SESSION_ROUTE = "/session"
#: The route whose 401 is the sign-in page (a page a person opens, not an API).
_PAGE_ROUTES = {"player_page"}

# Constant (the values it needs are data attributes), so its hash is fixed.
_SCRIPT = """(function () {
  var note = document.getElementById("veo-sign-in");
  var say = function (text) { note.textContent = text; };
  var token = null;
  try { token = window.localStorage.getItem(note.dataset.tokenKey); } catch (e) {}
  if (!token) { say("Log in to Airflow in this browser (the link below), then reload this page."); return; }
  var mark = "veo-ui-sign-in:" + location.pathname;
  if (Date.now() - Number(window.sessionStorage.getItem(mark) || 0) < 15000) {
    say("Airflow accepted your login but this page still cannot use it: log in to Airflow again, then reload.");
    return;
  }
  window.sessionStorage.setItem(mark, String(Date.now()));
  fetch(note.dataset.session, {method: "POST", credentials: "same-origin", cache: "no-store",
                               headers: {Authorization: "Bearer " + token}})
    .then(function (r) {
      if (r.ok) { location.reload(); return; }
      say(r.status === 401 ? "Your Airflow login has expired: log in to Airflow again, then reload this page."
                           : "Airflow refused your login (HTTP " + r.status + "): log in again, then reload.");
    }, function () { say("Could not reach Airflow's api-server: reload this page."); });
})();"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()

#: The sign-in page runs only its own script, and talks only to the api-server.
SIGN_IN_CSP = (
    f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
#: The player page's own headers, with the sign-in page's policy.
_SIGN_IN_HEADERS = {**PAGE_HEADERS, "Content-Security-Policy": SIGN_IN_CSP, "WWW-Authenticate": "Bearer"}


class SignInNeeded(HTTPException):
    """No usable credential: a person's page answers the sign-in page, an API route a plain 401."""

    def __init__(self) -> None:
        super().__init__(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})


def render_sign_in(session_url: str, ui_url: str) -> str:
    """The page that swaps the UI's ``localStorage`` token for this app's cookie, then reloads."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Veo video: signing in</title></head><body><h1>Veo video</h1>"
        f'<p id="veo-sign-in" data-session="{escape(session_url)}" '
        f'data-token-key="{escape(compat.UI_TOKEN_STORAGE_KEY)}">Signing in with your Airflow login…</p>'
        f'<p><a href="{escape(ui_url)}">Airflow</a></p><script>{_SCRIPT}</script></body></html>'
    )


def _bearer(request: Request) -> str | None:
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    return (token or None) if scheme.lower() == "bearer" else None


def _app_path(request: Request) -> str:
    """This app's path under the api-server (``/veo-ui``, behind any prefix it is mounted under)."""
    return str(request.scope.get("root_path") or UI_PREFIX)


async def current_user(request: Request) -> Any:
    """Airflow's ``get_user``, fed the ``Authorization`` header, else this app's cookie."""
    get_user = compat.airflow_get_user()
    token = _bearer(request)
    if token is not None:
        return await get_user(token)  # Airflow's answers: 401 expired, 403 invalid
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        raise SignInNeeded()
    try:
        return await get_user(cookie)
    except HTTPException:
        # An expired (or since re-keyed) cookie: sign in again with the UI's current token.
        raise SignInNeeded() from None


def _max_age(token: str) -> int | None:
    """Seconds until the (already verified) token expires; None: a cookie for this browser session."""
    import jwt

    try:
        expires = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return max(0, int(expires - time.time())) if isinstance(expires, (int, float)) else None


async def open_session(request: Request) -> Response:
    """Verify the ``Authorization`` token as Airflow does and keep it as this app's cookie."""
    token = _bearer(request)
    if token is None:
        raise SignInNeeded()
    await compat.airflow_get_user()(token)
    from airflow.providers.common.compat.sdk import conf

    secure = request.url.scheme == "https" or bool(conf.get("api", "ssl_cert", fallback=""))
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=_max_age(token),
        path=_app_path(request),
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response


async def _sign_in_needed(request: Request, exc: Exception) -> Response:
    route = getattr(request.scope.get("route"), "name", None)
    if route in _PAGE_ROUTES and request.method == "GET":
        app_path = _app_path(request)
        page = render_sign_in(app_path + SESSION_ROUTE, app_path.removesuffix(UI_PREFIX) + "/")
        return HTMLResponse(page, status_code=401, headers=_SIGN_IN_HEADERS)
    return JSONResponse({"detail": "Not authenticated"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def install(app: FastAPI) -> None:
    """Airflow 3.0 only: the session route, the sign-in page, and ``get_user`` overridden on ``app``."""
    app.dependency_overrides[compat.airflow_get_user()] = current_user
    app.add_api_route(SESSION_ROUTE, open_session, methods=["POST"], status_code=204, name="open_session")
    app.add_exception_handler(SignInNeeded, _sign_in_needed)
