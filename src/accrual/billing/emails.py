"""The billing center's emails, in the workspace's language (English or Simplified Chinese)."""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined

from accrual.infra.mail import Mail

_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)  # noqa: S701 (plain text)

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "binding_code": {
        "en": ("Your code to bind workspace {{ workspace_name }}",
               "Hello {{ username }},\n\n"
               "Someone asked to bind the workspace “{{ workspace_name }}” (site {{ site }}) "
               "to your billing account, which upgrades it to the commercial plan and has your "
               "account pay for it.\n\n"
               "Your code: {{ code }}\n\n"
               "It is valid until {{ expires_at }}. If you did not ask for this, ignore this mail.\n"),
        "zh": ("绑定工作空间 {{ workspace_name }} 的验证码",
               "{{ username }}，您好：\n\n"
               "有人申请将工作空间“{{ workspace_name }}”（站点 {{ site }}）绑定到您的费用中心账号，"
               "绑定后该工作空间升级为商业版，费用由您的账号支付。\n\n"
               "验证码：{{ code }}\n\n"
               "有效期至 {{ expires_at }}。如非本人操作，请忽略本邮件。\n"),
    },
}


def render(template: str, language: str, to: str, **values: object) -> Mail:
    subject, body = TEMPLATES[template].get(language) or TEMPLATES[template]["en"]
    return Mail(to=to, subject=_env.from_string(subject).render(**values),
                body=_env.from_string(body).render(**values))
