"""The texts of the console's e-mails, in the workspace's language (English or Simplified Chinese)."""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined

from accrual.infra.mail import Mail

_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "password_reset": {
        "en": ("Your code to set a new console password",
               ("Hello,\n\n"
                "Someone asked to set a new password for the console account {{ email }}.\n\n"
                "Your code: {{ code }}\n\n"
                "Enter it on the page where you asked for it, with the new password, before "
                "{{ expires_at }}. If you did not ask for this, ignore this mail: your password "
                "stays as it is.\n")),
        "zh": ("设置控制台新密码的验证码",
               ("您好：\n\n"
                "有人申请为控制台账号 {{ email }} 设置新密码。\n\n"
                "验证码：{{ code }}\n\n"
                "请在 {{ expires_at }} 前，在申请页面输入验证码和新密码。如非本人操作，请忽略本邮件，"
                "您的密码不会改变。\n")),
    },
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
