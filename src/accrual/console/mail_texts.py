"""The texts of the console's e-mails, in the workspace's language (English or Simplified Chinese)."""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined

from accrual.infra.mail import Mail

_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "high_consumption": {
        "en": ("High consumption in {{ workspace_name }}: {{ item }} on {{ day }}",
               ("The daily amount of {{ item }} in workspace “{{ workspace_name }}” on {{ day }} "
                "is {{ amount }} {{ currency }}, above your alert threshold of {{ threshold }} "
                "{{ currency }}.\n\nYou will not be told again until a day stays below the "
                "threshold or the threshold is changed.\n")),
        "zh": ("高消费预警：{{ workspace_name }} 的 {{ item }}（{{ day }}）",
               ("工作空间“{{ workspace_name }}”在 {{ day }} 的 {{ item }} 日消费为 {{ amount }} "
                "{{ currency }}，已超过您设置的预警阈值 {{ threshold }} {{ currency }}。\n\n"
                "在某日消费回落到阈值以下或阈值被修改之前，不会重复通知。\n")),
    },
}


def render(template: str, language: str, to: str, **values: object) -> Mail:
    subject, body = TEMPLATES[template].get(language) or TEMPLATES[template]["en"]
    return Mail(to=to, subject=_env.from_string(subject).render(**values),
                body=_env.from_string(body).render(**values))
