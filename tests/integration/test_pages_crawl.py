"""Every page reachable from the navigation answers without a 5xx, for every role, in both
languages; a member without the billing permission is refused the Billing module; one
tenant's pages never show another tenant's data."""

from __future__ import annotations

import html
import re
from collections import deque

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from accrual.app import Runtime
from accrual.console.adapters import tables as console_tables
from tests.conftest import ADMIN
from tests.helpers import close_day, register, send_usage
from tests.pages_support import billing_sign_in, browser_client, console_sign_in, submit

_LINK = re.compile(r'href="(/[^"#]*)"')
_SKIP = ("/static/", "/billing/jump", "/sandbox/")


def accessibility_problems(page: str) -> list[str]:
    """What keyboard and screen-reader users would trip over: a repeated id, a form control
    without a label (``<label for>``, a wrapping label or ``aria-label``)."""
    ids = re.findall(r'\sid="([^"]+)"', page)
    problems = [f"id {i!r} repeated" for i in sorted({i for i in ids if ids.count(i) > 1})]
    labelled = set(re.findall(r'<label[^>]*\sfor="([^"]+)"', page))
    wrapped = {m.start() for m in re.finditer(r"<label[^>]*>(?:(?!</label>).)*?<(?:input|select)",
                                              page, re.S)}
    for control in re.finditer(r"<(input|select|textarea)\b([^>]*)>", page):
        attrs = control.group(2)
        if re.search(r'type="(hidden|submit|button)"', attrs) or "aria-label=" in attrs:
            continue
        found = re.search(r'\sid="([^"]+)"', attrs)
        inside = any(start < control.start() and "</label>" not in page[start:control.start()]
                     for start in wrapped)
        if not inside and (found is None or found.group(1) not in labelled):
            problems.append(f"unlabelled {control.group(0)[:80]}")
    return problems


def crawl(client: TestClient, *starts: str, limit: int = 150) -> dict[str, int]:
    """GET every same-site page link reachable from ``starts`` (no forms): path → status;
    every HTML page is also checked for :func:`accessibility_problems`."""
    seen: dict[str, int] = {}
    queue = deque(starts)
    while queue and len(seen) < limit:
        path = queue.popleft()
        if path in seen or path.startswith(_SKIP):
            continue
        response = client.get(path)
        seen[path] = response.status_code
        if response.headers.get("content-type", "").startswith("text/html"):
            assert not accessibility_problems(response.text), (path, accessibility_problems(
                response.text))
            queue.extend(html.unescape(link) for link in _LINK.findall(response.text))
        elif response.status_code in (302, 303) and response.headers["location"].startswith("/"):
            queue.append(response.headers["location"])
    return seen


def _tenant_with_a_charge(client: TestClient, name: str) -> dict[str, str]:
    tenant = register(client, name)
    send_usage(client, tenant["ingest_key"], [
        {"id": f"{name}-1", "workspace_id": tenant["workspace_id"], "item": "trigger",
         "time": "2026-11-10T10:00:00+08:00", "quantity": "20000"}])
    return tenant


def _add_member(runtime: Runtime, client: TestClient, workspace_id: str, name: str, role: str) -> None:
    register(client, name)
    account_id = _console_account(runtime, f"{name}@example.com")
    with runtime.console.engine.begin() as conn:
        conn.execute(insert(console_tables.members).values(
            workspace_id=workspace_id, account_id=account_id, role=role))


def _console_account(runtime: Runtime, email: str) -> str:
    with runtime.console.engine.connect() as conn:
        return str(conn.execute(select(console_tables.accounts.c.id)
                                .where(console_tables.accounts.c.email == email)).scalar_one())


def test_no_page_fails_for_any_role_or_language(client: TestClient, runtime: Runtime) -> None:
    ada = _tenant_with_a_charge(client, "ada")
    close_day(client, "2026-11-10")
    _add_member(runtime, client, ada["workspace_id"], "adminna", "admin")
    _add_member(runtime, client, ada["workspace_id"], "mem", "member")
    # A custom role granted Plans & Billing, given through the members service.
    register(client, "fin")
    owner = _console_account(runtime, "ada@example.com")
    finance = runtime.console.members.create_role(owner, ada["workspace_id"], "Finance",
                                                  ["billing"])
    runtime.console.members.add(owner, ada["workspace_id"], "fin@example.com", "custom",
                                finance.id)
    workspace = f"/console/workspaces/{ada['workspace_id']}/"
    for email in ("ada@example.com", "adminna@example.com", "mem@example.com",
                  "fin@example.com"):
        for language in ("en", "zh"):
            with browser_client(runtime) as browser:
                browser.cookies.set("accrual_lang", language)
                console_sign_in(browser, email)
                statuses = crawl(browser, "/console/", workspace)
                failed = {p: s for p, s in statuses.items() if s >= 500}
                assert not failed, (email, language, failed)
                assert statuses[workspace] == 200
                if email == "fin@example.com":  # the billing module, reached by its links
                    assert statuses[f"{workspace}billing/details"] == 200, statuses
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        statuses = crawl(browser, "/billing/")
        assert not {p: s for p, s in statuses.items() if s >= 500}
        assert [p for p, s in statuses.items() if s == 200 and p.count("/") <= 3] and \
            not [p for p, s in statuses.items() if s == 404], statuses
    for language in ("en", "zh"):
        with browser_client(runtime) as operator:
            operator.cookies.set("accrual_lang", language)
            assert submit(operator, "/operator/signin", {"token": ADMIN}).status_code == 303
            statuses = crawl(operator, "/operator/")
            assert len(statuses) >= 10
            assert not {p: s for p, s in statuses.items() if s >= 400}, statuses


def test_a_member_without_the_billing_permission_is_refused_the_billing_module(
        client: TestClient, runtime: Runtime) -> None:
    ada = _tenant_with_a_charge(client, "ada")
    _add_member(runtime, client, ada["workspace_id"], "mem", "member")
    billing_pages = [f"/console/workspaces/{ada['workspace_id']}/billing/{page}"
                     for page in ("", "usage", "details", "consumption", "alerts")]
    with browser_client(runtime) as owner:
        console_sign_in(owner, "ada@example.com")
        assert [owner.get(p).status_code for p in billing_pages] == [200] * len(billing_pages)
    with browser_client(runtime) as member:
        console_sign_in(member, "mem@example.com")
        home = member.get(f"/console/workspaces/{ada['workspace_id']}/")
        assert home.status_code == 200 and "/billing/" not in home.text
        for path in billing_pages:
            refused = member.get(path)
            assert refused.status_code == 403, path
            assert "billing_permission_required" in refused.text
    # The API refuses the member the same views.
    token = client.post("/console/v1/sessions", json={"email": "mem@example.com",
                                                      "password": "correct horse battery"}).json()["token"]
    for view in ("billing-details", "consumption", "usage"):
        answer = client.get(f"/console/v1/workspaces/{ada['workspace_id']}/{view}",
                            headers={"Authorization": f"Bearer {token}"})
        assert (answer.status_code, answer.json()["error"]["code"]) == \
            (403, "billing_permission_required"), view


def test_one_tenants_pages_never_show_anothers_data(client: TestClient, runtime: Runtime) -> None:
    ada = _tenant_with_a_charge(client, "ada")
    bob = _tenant_with_a_charge(client, "bob")
    close_day(client, "2026-11-10")
    secrets = [ada["workspace_id"], ada["billing_account_id"], "ada&#39;s team", "ada@example.com"]
    with browser_client(runtime) as browser:
        console_sign_in(browser, "bob@example.com")
        billing_sign_in(browser, "bob")
        statuses = crawl(browser, "/console/", f"/console/workspaces/{bob['workspace_id']}/",
                         "/billing/")
        for path in statuses:
            page = browser.get(path).text
            assert not [s for s in secrets if s in page], path
        # Ada's pages by their addresses: refused, and nothing of hers shown.
        for path in [p.replace(bob["workspace_id"], ada["workspace_id"]) for p in statuses
                     if bob["workspace_id"] in p]:
            answer = browser.get(path)
            assert answer.status_code in (403, 404), path
            assert "ada&#39;s team" not in answer.text


def test_the_accessibility_check_sees_what_it_looks_for() -> None:
    assert accessibility_problems('<label for="a">A</label><input id="a" name="a">') == []
    assert accessibility_problems('<label>A <input name="a"></label>') == []
    assert accessibility_problems('<select name="s" aria-label="S"></select>') == []
    assert accessibility_problems('<input type="hidden" name="x">') == []
    assert accessibility_problems('<input name="a">') != []
    assert accessibility_problems('<label for="b">B</label><input id="a">') != []
    assert accessibility_problems('<p id="x"></p><p id="x"></p>') == ["id 'x' repeated"]
