"""The PDF statement in English and Simplified Chinese, set in the shipped CJK font."""

from __future__ import annotations

import io
import warnings
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from accrual.app import Runtime
from accrual.billing import statement_pdf
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI
from tests.helpers import OPERATOR, billing_login, close_day, register, send_usage
from tests.integration.test_bad_input import error_code


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SHANGHAI)


def pdf_text(content: bytes) -> str:
    """The statement's text without whitespace (extraction spaces out CJK glyphs)."""
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return "".join(text.split())


def october_bill(client: TestClient, runtime: Runtime, clock: ManualClock,
                 workspace_name: str, language: str) -> tuple[str, dict[str, str], Any]:
    clock.set(at(10, 30, 0))
    reg = register(client, "lin", workspace_name=workspace_name, language=language)
    ws, key = reg["workspace_id"], reg["ingest_key"]
    clock.set(at(10, 30, 13))
    send_usage(client, key, [
        {"id": "a", "workspace_id": ws, "item": "logs", "time": "2026-10-30T12:00:00+08:00",
         "quantity": "2000000", "retention_days": 14},
        {"id": "b", "workspace_id": ws, "item": "trace", "time": "2026-10-30T12:00:00+08:00",
         "quantity": "1000000", "retention_days": 7}])
    clock.set(at(10, 31, 1))
    close_day(client, "2026-10-30")
    clock.set(at(11, 3, 1))
    runtime.scheduler.tick()
    account = reg["billing_account_id"]
    path = f"/billing/v1/accounts/{account}/monthly-bills/2026-10"
    return path, billing_login(client, "lin"), reg


def test_a_chinese_statement_with_a_chinese_workspace_name(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    path, session, _reg = october_bill(client, runtime, clock, "观测云研发团队", "zh")
    total = client.get(path, headers=session).json()["total"]
    # The account's language (zh, from registration) is the default.
    response = client.get(path, params={"format": "pdf"}, headers=session)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    text = pdf_text(response.content)
    for expected in ("2026-10月度账单", f"合计：{total}", "币种：CNY", "明细条数：2",
                     "按工作空间汇总", "消费明细", "观测云研发团队", "日志", "应用性能Trace",
                     "金额", "单价", "消费"):
        assert expected in text, (expected, text)
    assert "Monthly" not in text
    # Asked for in English: English labels, the workspace's own (Chinese) name.
    english = client.get(path, params={"format": "pdf", "language": "en"}, headers=session)
    text = pdf_text(english.content)
    for expected in ("Monthlystatement2026-10", f"Total:{total}", "Totalsbyworkspace",
                     "观测云研发团队", "Logrecords", "APMtraces"):
        assert expected in text, (expected, text)
    assert "月度账单" not in text


def test_an_english_account_gets_english_by_default(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    path, session, _ = october_bill(client, runtime, clock, "Lin's team", "en")
    text = pdf_text(client.get(path, params={"format": "pdf"}, headers=session).content)
    assert "Monthlystatement2026-10" in text and "Lin'steam" in text
    chinese = client.get(path, params={"format": "pdf", "language": "zh"}, headers=session)
    assert "2026-10月度账单" in pdf_text(chinese.content)
    assert error_code(client.get(path, params={"format": "pdf", "language": "fr"},
                                 headers=session), 422) == "invalid_request"


def test_characters_outside_the_font_are_replaced_not_fatal(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    # An emoji, a hanzi outside GB2312 level 1 (龘) and one of Extension B (𠀀).
    path, session, _ = october_bill(client, runtime, clock, "火箭🚀龘团队𠀀", "zh")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fpdf2 warns about glyphs a font lacks
        response = client.get(path, params={"format": "pdf"}, headers=session)
    assert response.status_code == 200, response.text
    assert "火箭□□团队□" in pdf_text(response.content)
    # The operator sees the statement too.
    assert client.get(path, params={"format": "pdf"}, headers=OPERATOR).status_code == 200


def test_the_font_draws_every_label_and_item_name() -> None:
    for labels in statement_pdf.LABELS.values():
        for text in labels.values():
            assert statement_pdf.printable(text) == text, text
    for name in statement_pdf.ITEM_NAMES_ZH.values():
        assert statement_pdf.printable(name) == name, name
    assert statement_pdf.printable("账单 ¥1,234.50 （含税）—“测试”") == "账单 ¥1,234.50 （含税）—“测试”"
    assert statement_pdf.printable("é ß Ω Я") == "é ß Ω Я"
    assert statement_pdf.printable("𠀀🚀") == "□□"


@pytest.mark.parametrize("weight", [statement_pdf.REGULAR, statement_pdf.BOLD])
def test_the_shipped_font_is_small(weight: Any) -> None:
    assert weight.stat().st_size <= 2 * 1024 * 1024
    assert (weight.parent / "OFL.txt").read_text().startswith("Copyright 2014-2021 Adobe")
