"""The billing center's codes as people read them (translated where shown)."""

from __future__ import annotations

from accrual.web.i18n import N_

LABELS = {
    "method": {"billing_center": N_("Billing Center account"), "aws": N_("AWS"),
               "aliyun": N_("Alibaba Cloud"), "huawei": N_("Huawei Cloud"),
               "azure": N_("Azure")},
    # A consumption detail's kind.
    "line_kind": {"charge": N_("Charge"), "adjustment": N_("Adjustment")},
    # The balance a movement is on.
    "balance": {"cash": N_("Cash"), "prepaid": N_("Prepaid balance"),
                "card": N_("Prepaid card"), "voucher_standard": N_("Voucher"),
                "voucher_discount": N_("Discount voucher")},
    # The journal entry a movement belongs to (others are shown by their code).
    "entry": {"recharge": N_("Recharge"), "charge": N_("Charge"),
              "card_purchase": N_("Prepaid card purchase"), "card_grant": N_("Prepaid card grant"),
              "voucher_grant": N_("Voucher grant"), "write_off": N_("Expired balance written off"),
              "marketplace_refused": N_("Refused by the marketplace")},
    "invoice_type": {"vat_ordinary": N_("VAT ordinary invoice"),
                     "vat_special": N_("VAT special invoice"),
                     "electronic_ordinary": N_("Electronic ordinary invoice")},
    "invoice_status": {"requested": N_("Requested"), "issued": N_("Issued"),
                       "rejected": N_("Rejected")},
    "voucher_kind": {"voucher_standard": N_("Standard voucher"),
                     "voucher_discount": N_("Discount voucher")},
    "instrument_status": {"active": N_("Active"), "used_up": N_("Used up"),
                          "expired": N_("Expired")},
    "lock_state": {"countdown": N_("Arrears countdown"), "locked": N_("Locked")},
}
