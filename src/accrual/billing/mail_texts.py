"""The texts of the billing center's mails: subject and body templates, in the workspace's
language (English or Simplified Chinese). Queuing and sending are ``services.mail_outbox``."""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined

from accrual.infra.mail import Mail

_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "password_reset": {
        "en": ("Your code to set a new Billing Center password",
               ("Hello {{ username }},\n\n"
                "Someone asked to set a new password for the Billing Center account "
                "{{ username }}.\n\n"
                "Your code: {{ code }}\n\n"
                "Enter it on the page where you asked for it, with the new password, before "
                "{{ expires_at }}. If you did not ask for this, ignore this mail: your password "
                "stays as it is.\n")),
        "zh": ("设置费用中心新密码的验证码",
               ("{{ username }}，您好：\n\n"
                "有人申请为费用中心账号 {{ username }} 设置新密码。\n\n"
                "验证码：{{ code }}\n\n"
                "请在 {{ expires_at }} 前，在申请页面输入验证码和新密码。如非本人操作，请忽略本邮件，"
                "您的密码不会改变。\n")),
    },
    "binding_code": {
        "en": ("Your code to bind workspace {{ workspace_name }}",
               ("Hello {{ username }},\n\n"
                "Someone asked to bind the workspace “{{ workspace_name }}” (site {{ site }}) "
                "to your billing account, which upgrades it to the commercial plan and has your "
                "account pay for it.\n\n"
                "Your code: {{ code }}\n\n"
                "It is valid until {{ expires_at }}. If you did not ask for this, ignore this mail.\n")),
        "zh": ("绑定工作空间 {{ workspace_name }} 的验证码",
               ("{{ username }}，您好：\n\n"
                "有人申请将工作空间“{{ workspace_name }}”（站点 {{ site }}）绑定到您的费用中心账号，"
                "绑定后该工作空间升级为商业版，费用由您的账号支付。\n\n"
                "验证码：{{ code }}\n\n"
                "有效期至 {{ expires_at }}。如非本人操作，请忽略本邮件。\n")),
    },
    # Bind Workspace asked from the billing center: the code goes to the workspace's owner,
    # who gives it to the account that is to pay (``username``) if they agree.
    "binding_code_owner": {
        "en": ("A billing account asks to pay for {{ workspace_name }}",
               ("Hello,\n\n"
                "The billing center account {{ username }} asked to pay for your workspace "
                "“{{ workspace_name }}” (site {{ site }}). Once bound, the workspace is on the "
                "commercial plan and {{ username }} pays for it.\n\n"
                "If you agree, give them this code: {{ code }}\n\n"
                "It is valid until {{ expires_at }}. If you do not agree, ignore this mail: "
                "nothing changes without the code.\n")),
        "zh": ("费用中心账号申请为 {{ workspace_name }} 付费",
               ("您好：\n\n"
                "费用中心账号 {{ username }} 申请为您的工作空间“{{ workspace_name }}”"
                "（站点 {{ site }}）付费。绑定后该工作空间升级为商业版，费用由 {{ username }} 支付。\n\n"
                "如您同意，请将此验证码告知对方：{{ code }}\n\n"
                "有效期至 {{ expires_at }}。如不同意，请忽略本邮件：没有验证码不会有任何变更。\n")),
    },
    # A raise to administrator of a commercial workspace waits for the paying account
    # (reference-billing.md 1.4). Values: username, workspace_name, site, member_email,
    # requested_by_email.
    "promotion_requested": {
        "en": ("Approve an administrator of {{ workspace_name }}?",
               ("Hello {{ username }},\n\n"
                "{{ requested_by_email }} asked to make {{ member_email }} an administrator of "
                "the workspace “{{ workspace_name }}” (site {{ site }}), which your billing "
                "account pays for. Administrators see the workspace's bills and set its "
                "high-consumption alerts.\n\n"
                "Approve or reject it in the Billing Center under Administrator approvals. "
                "Until then the member keeps the role they have.\n")),
        "zh": ("是否批准 {{ workspace_name }} 的管理员？",
               ("{{ username }}，您好：\n\n"
                "{{ requested_by_email }} 申请将 {{ member_email }} 设为工作空间"
                "“{{ workspace_name }}”（站点 {{ site }}）的管理员，该工作空间由您的费用中心账号付费。"
                "管理员可查看工作空间的账单并设置高消费预警。\n\n"
                "请在费用中心的“管理员审批”中批准或拒绝。在此之前，该成员保持原有角色。\n")),
    },
    # -- bills and arrears (reference-billing.md §3.6 and §5, decisions.md 18) --
    # Values: username, currency, amount (owed), lock_at (local time), workspaces (names).
    "bill_generated": {
        "en": ("Your bill for {{ month }}: {{ total }} {{ currency }}",
               ("Hello {{ username }},\n\n"
                "The monthly bill of your billing account for {{ month }} is ready: "
                "{{ total }} {{ currency }} in {{ lines }} lines. You can view and export it "
                "in the billing center under Bill Management.\n"
                "{% if locked %}\n"
                "Your account is in arrears: it owes {{ amount }} {{ currency }}, and its "
                "workspaces are locked until this is paid. Top up the account in the billing "
                "center (a top-up pays the arrears first) and they are unlocked at once.\n"
                "{% elif in_arrears %}\n"
                "Your account is in arrears: it owes {{ amount }} {{ currency }}. Unless this "
                "is paid by {{ lock_at }}, its workspaces will be locked and stop accepting "
                "new data. Top up the account in the billing center (a top-up pays the "
                "arrears first) or change the workspaces' settlement method.\n"
                "{% endif %}")),
        "zh": ("{{ month }} 月度账单：{{ total }} {{ currency }}",
               ("{{ username }}，您好：\n\n"
                "您的费用中心账号 {{ month }} 的月度账单已生成：共 {{ lines }} 条明细，"
                "合计 {{ total }} {{ currency }}。您可以在费用中心的账单管理中查看和导出。\n"
                "{% if locked %}\n"
                "您的账号已欠费 {{ amount }} {{ currency }}，关联的工作空间已被锁定。"
                "请在费用中心充值（充值优先抵扣欠费），结清后工作空间立即解锁。\n"
                "{% elif in_arrears %}\n"
                "您的账号已欠费 {{ amount }} {{ currency }}。如在 {{ lock_at }} 前未结清，"
                "关联的工作空间将被锁定并停止接收新数据。请在费用中心充值（充值优先抵扣欠费），"
                "或变更工作空间的结算方式。\n"
                "{% endif %}")),
    },
    "countdown": {
        "en": ("Account {{ username }} is in arrears: workspaces lock on {{ lock_at }}",
               ("Hello,\n\n"
                "The billing account {{ username }} owes {{ amount }} {{ currency }} after its "
                "latest settlement, so it is in arrears and a 14-day settlement period has "
                "started.\n\n"
                "Unless the arrears are paid by {{ lock_at }}, "
                "{% if workspaces %}these workspaces will be locked and stop accepting new "
                "data:\n{% for name in workspaces %}  - {{ name }}\n{% endfor %}"
                "{% else %}the workspaces it pays for will be locked and stop accepting new "
                "data.\n{% endif %}"
                "Until then, data is still reported and can be viewed as usual.\n\n"
                "How to pay: top up the account in the billing center (online, or by bank "
                "transfer); a top-up pays the arrears first and stops the countdown at once. "
                "You can also change a workspace's settlement method in the billing center.\n")),
        "zh": ("费用中心账号 {{ username }} 已欠费：工作空间将于 {{ lock_at }} 锁定",
               ("您好：\n\n"
                "费用中心账号 {{ username }} 在最近一次结算后欠费 {{ amount }} {{ currency }}，"
                "14 天结算期已开始。\n\n"
                "如在 {{ lock_at }} 前未结清欠费，"
                "{% if workspaces %}以下工作空间将被锁定并停止接收新数据：\n"
                "{% for name in workspaces %}  - {{ name }}\n{% endfor %}"
                "{% else %}该账号支付的工作空间将被锁定并停止接收新数据。\n{% endif %}"
                "在此之前，数据照常上报，历史数据照常查看。\n\n"
                "如何结清：在费用中心充值（在线支付或银行转账），充值优先抵扣欠费，"
                "倒计时随即停止。您也可以在费用中心变更工作空间的结算方式。\n")),
    },
    "reminder": {
        "en": ("Reminder: workspaces of {{ username }} lock on {{ lock_at }}",
               ("Hello,\n\n"
                "The billing account {{ username }} still owes {{ amount }} {{ currency }}. "
                "The settlement period ends on {{ lock_at }}; then "
                "{% if workspaces %}these workspaces will be locked and stop accepting new "
                "data:\n{% for name in workspaces %}  - {{ name }}\n{% endfor %}"
                "{% else %}the workspaces it pays for will be locked.\n{% endif %}\n"
                "To keep them running, top up the account in the billing center (a top-up "
                "pays the arrears first) or change the workspaces' settlement method.\n")),
        "zh": ("提醒：{{ username }} 的工作空间将于 {{ lock_at }} 锁定",
               ("您好：\n\n"
                "费用中心账号 {{ username }} 仍欠费 {{ amount }} {{ currency }}。"
                "结算期将于 {{ lock_at }} 结束，届时"
                "{% if workspaces %}以下工作空间将被锁定并停止接收新数据：\n"
                "{% for name in workspaces %}  - {{ name }}\n{% endfor %}"
                "{% else %}该账号支付的工作空间将被锁定。\n{% endif %}\n"
                "如需继续使用，请在费用中心充值（充值优先抵扣欠费），或变更工作空间的结算方式。\n")),
    },
    "locked": {
        "en": ("Workspaces of {{ username }} are locked for arrears",
               ("Hello,\n\n"
                "The billing account {{ username }} owes {{ amount }} {{ currency }} and its "
                "settlement period has ended, so these workspaces are locked:\n"
                "{% for name in workspaces %}  - {{ name }}\n{% endfor %}\n"
                "New data is refused; the data already stored is kept but not shown.\n\n"
                "To unlock them at once, top up the account in the billing center (a top-up "
                "pays the arrears first) or change the workspaces' settlement method. The "
                "owner of a locked workspace may also dissolve it, which deletes its data "
                "for good.\n")),
        "zh": ("{{ username }} 的工作空间因欠费已被锁定",
               ("您好：\n\n"
                "费用中心账号 {{ username }} 欠费 {{ amount }} {{ currency }}，结算期已结束，"
                "以下工作空间已被锁定：\n"
                "{% for name in workspaces %}  - {{ name }}\n{% endfor %}\n"
                "新数据将被拒收；已存储的数据会保留，但暂不可查看。\n\n"
                "在费用中心充值（充值优先抵扣欠费）或变更工作空间的结算方式后，工作空间立即解锁。"
                "工作空间所有者也可以解散被锁定的工作空间，解散后数据将被永久删除。\n")),
    },
    "unlocked": {
        "en": ("Workspaces of {{ username }} are unlocked",
               ("Hello,\n\n"
                "The arrears of the billing account {{ username }} are paid. These workspaces "
                "are unlocked and accept new data again:\n"
                "{% for name in workspaces %}  - {{ name }}\n{% endfor %}")),
        "zh": ("{{ username }} 的工作空间已解锁",
               ("您好：\n\n"
                "费用中心账号 {{ username }} 的欠费已结清，以下工作空间已解锁，"
                "恢复接收新数据：\n"
                "{% for name in workspaces %}  - {{ name }}\n{% endfor %}")),
    },
    "settled": {
        "en": ("Arrears of {{ username }} are paid",
               ("Hello,\n\n"
                "The arrears of the billing account {{ username }} are paid: the settlement "
                "period has stopped and no workspace will be locked.\n")),
        "zh": ("{{ username }} 的欠费已结清",
               ("您好：\n\n"
                "费用中心账号 {{ username }} 的欠费已结清，结算期倒计时已停止，"
                "工作空间不会被锁定。\n")),
    },
    "cloud_locked": {
        "en": ("Workspace {{ workspace_name }} is locked: its {{ vendor }} subscription ended",
               ("Hello,\n\n"
                "The {{ vendor }} marketplace subscription (cloud account {{ cloud_account }}) "
                "that paid for the workspace “{{ workspace_name }}” has ended, so the workspace "
                "is locked: new data is refused; the data already stored is kept.\n\n"
                "{% if then_billing_center %}"
                "The subscription no longer settles it: from {{ effective_from }} it is "
                "billed to the billing center account {{ username }}. To unlock it, top that "
                "account up and confirm the billing center as its settlement method, choose "
                "another cloud account, or subscribe again in the marketplace.\n"
                "{% else %}"
                "To unlock it at once, subscribe again in the marketplace, or change its "
                "settlement method in the billing center (another cloud account, or the "
                "billing center account).\n"
                "{% endif %}")),
        "zh": ("工作空间 {{ workspace_name }} 已锁定：{{ vendor }} 订阅已结束",
               ("您好：\n\n"
                "为工作空间“{{ workspace_name }}”付费的 {{ vendor }} 云市场订阅"
                "（云账号 {{ cloud_account }}）已结束，工作空间已被锁定：新数据将被拒收，"
                "已存储的数据会保留。\n\n"
                "{% if then_billing_center %}"
                "该订阅不再为其结算：自 {{ effective_from }} 起由费用中心账号 {{ username }} "
                "付费。为费用中心账号充值并确认以费用中心结算、选择其他云账号或在云市场重新订阅后，"
                "工作空间即可解锁。\n"
                "{% else %}"
                "在云市场重新订阅，或在费用中心变更其结算方式（其他云账号或费用中心账号）后，"
                "工作空间立即解锁。\n"
                "{% endif %}")),
    },
    # Values: workspace_name, vendor, cloud_account.
    "cloud_suspended": {
        "en": (("Workspace {{ workspace_name }} is locked: its {{ vendor }} subscription is "
                "suspended"),
               ("Hello,\n\n"
                "The {{ vendor }} marketplace subscription (cloud account {{ cloud_account }}) "
                "that pays for the workspace “{{ workspace_name }}” was suspended by the "
                "marketplace (expired or unpaid), so the workspace is locked: new data is "
                "refused; the data already stored is kept.\n\n"
                "It is unlocked as soon as the subscription is renewed or reinstated in the "
                "marketplace, or when you change its settlement method in the billing center "
                "(another cloud account, or the billing center account).\n")),
        "zh": ("工作空间 {{ workspace_name }} 已锁定：{{ vendor }} 订阅已暂停",
               ("您好：\n\n"
                "为工作空间“{{ workspace_name }}”付费的 {{ vendor }} 云市场订阅"
                "（云账号 {{ cloud_account }}）已被云市场暂停（到期或欠费），工作空间已被锁定："
                "新数据将被拒收，已存储的数据会保留。\n\n"
                "在云市场续费或恢复该订阅，或在费用中心变更其结算方式（其他云账号或费用中心账号）"
                "后，工作空间立即解锁。\n")),
    },
    # Values: workspace_name, vendor, cloud_account (the ended subscription's), route
    # (reinstated | resubscribed | cloud_account | billing_center), username (the paying account),
    # still_locked (an arrears case still holds it).
    "cloud_unlocked": {
        "en": (("{% if still_locked %}Workspace {{ workspace_name }}: the subscription lock is "
                "lifted, the arrears lock remains{% else %}Workspace {{ workspace_name }} is "
                "unlocked{% endif %}"),
               ("Hello,\n\n"
                "The workspace “{{ workspace_name }}” was locked because the {{ vendor }} "
                "marketplace subscription (cloud account {{ cloud_account }}) that paid for "
                "it {% if route == 'reinstated' %}was suspended{% else %}ended{% endif %}. "
                "It now settles "
                "{% if route == 'reinstated' %}through that subscription again, back in force"
                "{% elif route == 'resubscribed' %}through a new {{ vendor }} subscription"
                "{% elif route == 'cloud_account' %}through another cloud account"
                "{% else %}by the billing center account {{ username }}{% endif %}, "
                "so that lock is lifted.\n\n"
                "{% if still_locked %}"
                "It stays locked for now because the billing center account {{ username }} "
                "is in arrears; it is unlocked as soon as the arrears are paid.\n"
                "{% else %}"
                "It accepts new data again.\n"
                "{% endif %}")),
        "zh": (("{% if still_locked %}工作空间 {{ workspace_name }} 的订阅锁定已解除，"
                "欠费锁定仍在{% else %}工作空间 {{ workspace_name }} 已解锁{% endif %}"),
               ("您好：\n\n"
                "工作空间“{{ workspace_name }}”曾因为其付费的 {{ vendor }} 云市场订阅"
                "（云账号 {{ cloud_account }}）"
                "{% if route == 'reinstated' %}暂停{% else %}结束{% endif %}而被锁定。现在它"
                "{% if route == 'reinstated' %}已恢复，继续由该订阅结算"
                "{% elif route == 'resubscribed' %}改由新的 {{ vendor }} 订阅结算"
                "{% elif route == 'cloud_account' %}改由其他云账号结算"
                "{% else %}改由费用中心账号 {{ username }} 结算{% endif %}，"
                "该锁定已解除。\n\n"
                "{% if still_locked %}"
                "由于费用中心账号 {{ username }} 仍有欠费，工作空间暂时保持锁定，"
                "结清欠费后立即解锁。\n"
                "{% else %}"
                "工作空间已恢复接收新数据。\n"
                "{% endif %}")),
    },
    "cloud_switched": {
        "en": ("Workspace {{ workspace_name }} now settles by the billing center account",
               ("Hello,\n\n"
                "The {{ vendor }} marketplace subscription (cloud account {{ cloud_account }}) "
                "that paid for the workspace “{{ workspace_name }}” has ended. From "
                "{{ effective_from }} its bills are paid from the billing center account "
                "{{ username }}; top it up to keep the workspace running.\n")),
        "zh": ("工作空间 {{ workspace_name }} 已改为费用中心账号结算",
               ("您好：\n\n"
                "为工作空间“{{ workspace_name }}”付费的 {{ vendor }} 云市场订阅"
                "（云账号 {{ cloud_account }}）已结束。自 {{ effective_from }} 起，"
                "其账单由费用中心账号 {{ username }} 支付；请及时充值以保证工作空间正常使用。\n")),
    },
}


def render(template: str, language: str, to: str, **values: object) -> Mail:
    subject, body = TEMPLATES[template].get(language) or TEMPLATES[template]["en"]
    return Mail(to=to, subject=_env.from_string(subject).render(**values),
                body=_env.from_string(body).render(**values))
