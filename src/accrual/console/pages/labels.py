"""The console's codes as people read them (translated where shown: ``_(labels.plan[p])``)."""

from __future__ import annotations

from accrual.web.i18n import N_

LABELS = {
    "plan": {"free": N_("Free"), "commercial": N_("Commercial")},
    "role": {"owner": N_("Owner"), "admin": N_("Administrator"), "member": N_("Member")},
    "status": {"active": N_("Active"), "locked": N_("Locked"), "dissolved": N_("Dissolved")},
    "lock_state": {"countdown": N_("Arrears countdown"), "locked": N_("Locked")},
}
