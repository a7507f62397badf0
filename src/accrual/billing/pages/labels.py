"""The billing center's codes as people read them (translated where shown)."""

from __future__ import annotations

from accrual.web.i18n import N_

LABELS = {
    "method": {"billing_center": N_("Billing Center account"), "aws": N_("AWS"),
               "aliyun": N_("Alibaba Cloud"), "huawei": N_("Huawei Cloud"),
               "azure": N_("Azure")},
}
