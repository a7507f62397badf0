"""The console's codes as people read them (translated where shown: ``_(labels.plan[p])``)."""

from __future__ import annotations

from accrual.web.i18n import N_

LABELS = {
    "plan": {"free": N_("Free"), "commercial": N_("Commercial")},
    "role": {"owner": N_("Owner"), "admin": N_("Administrator"), "member": N_("Member")},
    "permission": {"billing": N_("Plans & Billing")},
    "status": {"active": N_("Active"), "locked": N_("Locked"), "dissolved": N_("Dissolved")},
    "lock_state": {"countdown": N_("Arrears countdown"), "locked": N_("Locked")},
    "method": {"billing_center": N_("Billing Center account"), "aws": N_("AWS"),
               "aliyun": N_("Alibaba Cloud"), "huawei": N_("Huawei Cloud"), "azure": N_("Azure")},
    "kind": {"charge": N_("Charge"), "adjustment": N_("Adjustment")},
    "period": {"today": N_("Today"), "yesterday": N_("Yesterday"), "this_week": N_("This week"),
               "last_week": N_("Last week"), "this_month": N_("This month"),
               "last_month": N_("Last month"), "this_year": N_("This year")},
    "data_type": {"metrics": N_("Metrics"), "logs": N_("Logs"), "apm": N_("APM"),
                  "rum": N_("RUM"), "backup": N_("Backup logs")},
    # The billing items (catalog codes), as the reference's pages name them.
    "item": {
        "timeseries": N_("Time series"), "logs": N_("Logs"), "trace": N_("APM traces"),
        "profile": N_("APM profiles"), "rum_pv": N_("RUM page views"),
        "session_replay": N_("Session replays"), "synthetic_test": N_("Synthetic tests"),
        "trigger": N_("Task calls"), "sms": N_("SMS"), "network_host": N_("Network hosts"),
        "forward_external": N_("Data forwarding (external)"),
        "forward_internal": N_("Data forwarding (platform storage)"),
        "sensitive_scan": N_("Sensitive data scan"), "scheduled_report": N_("Scheduled reports"),
        "central_pipeline": N_("Central Pipeline"), "datakit": N_("DataKit hosts (legacy)")},
}
