"""The services' refusals in the page's language, by their stable code.

A service says precisely what went wrong, in English (the API's words). A page in
another language shows the code's text from this table, translated through the
catalogs; a code not here keeps the service's own words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from accrual.web.i18n import N_


class Refused(Protocol):
    code: str
    message: str


TEXTS: dict[str, str] = {
    "account_in_arrears": N_("The account is in arrears; pay the arrears first."),
    "account_not_found": N_("No account matches; check the name or email."),
    "activation_expired": N_(
        "This marketplace activation has expired; subscribe again in the marketplace."),
    "activation_not_claimed": N_(
        "This marketplace activation is not linked to a Billing Center account yet."),
    "activation_not_found": N_(
        "No marketplace activation has this ID; check it or subscribe in the marketplace first."),
    "activation_not_yours": N_("This marketplace activation belongs to another account."),
    "activation_used": N_("This marketplace activation was used already."),
    "already_bound": N_("This workspace is already bound to a Billing Center account."),
    "already_certified": N_("The account is already certified."),
    "already_commercial": N_("The workspace is already on the commercial plan."),
    "already_member": N_("This person is already a member of the workspace."),
    "amount_exceeds_invoiceable": N_("The amount is more than can be invoiced."),
    "billing_center_unavailable": N_(
        "The Billing Center cannot be reached right now; try again in a moment."),
    "billing_permission_required": N_(
        "Plans & Billing is shown to the owner, administrators "
        "and roles granted it; ask the owner or an administrator."),
    "billing_unavailable": N_(
        "The Billing Center cannot be reached; nothing was created. Please try again."),
    "binding_changing": N_("The workspace's binding is changing; try again later."),
    "certification_mismatch": N_("The certification details do not match."),
    "cloud_account_ambiguous": N_("Several cloud accounts qualify; choose one."),
    "cloud_account_not_found": N_("No such cloud account is linked to this account."),
    "cloud_account_required": N_(
        "This settlement method needs a linked cloud account; subscribe in the marketplace first."),
    "cloud_account_taken": N_("This cloud account is linked to another Billing Center account."),
    "code_already_used": N_("This code was used already."),
    "code_expired": N_("No valid code; ask for a new one."),
    "commercial_only": N_("Only a commercial workspace can change this; upgrade first."),
    "confirmation_mismatch": N_("The name typed is not the workspace's name."),
    "currency_mismatch": N_("The currency does not match the account's."),
    "date_out_of_range": N_("The date is out of the allowed range."),
    "dissolve_not_allowed": N_(
        "A workspace can be dissolved only during its arrears countdown or while locked."),
    "email_taken": N_("An account with this email already exists; sign in instead."),
    "idempotency_conflict": N_(
        "This request was already made with other values; reload the page and try again."),
    "insufficient_balance": N_("The balance is not enough."),
    "invalid_activation": N_("The activation ID is not valid."),
    "invalid_amount": N_("The amount is not valid; enter a number with at most two decimals."),
    "invalid_bank_account": N_("The bank account is not valid."),
    "invalid_code": N_("The code is not valid."),
    "invalid_contact_name": N_("The contact name must be 1 to 100 characters."),
    "invalid_count": N_("The count is not valid."),
    "invalid_credentials": N_("The name or password is wrong."),
    "invalid_date": N_("The date is not valid."),
    "invalid_email": N_("The email address is not valid."),
    "invalid_enterprise_name": N_("The enterprise name is not valid."),
    "invalid_face_value": N_("The face value is not valid."),
    "invalid_invoice_type": N_("The invoice type is not valid."),
    "invalid_language": N_("The language must be English or Simplified Chinese."),
    "invalid_month": N_("The month is not valid."),
    "invalid_password": N_("The password must be 8 to 256 characters long."),
    "invalid_period": N_("The period is not valid."),
    "invalid_permission": N_("Unknown permission."),
    "invalid_phone": N_("The phone number may hold digits, spaces, '-' and a leading '+'."),
    "invalid_postcode": N_("The postcode is not valid."),
    "invalid_range": N_("The range is not valid; check the dates."),
    "invalid_registered_phone": N_("The registered phone is not valid."),
    "invalid_request": N_("The form is incomplete or too long; reload the page and try again."),
    "invalid_retention": N_("This retention is not offered for the data type."),
    "invalid_role": N_("Choose administrator, member or a custom role."),
    "invalid_role_name": N_(
        "A role name is 1 to 40 visible characters and not a built-in role's name."),
    "invalid_settlement_method": N_("This settlement method is not valid."),
    "invalid_taxpayer_id": N_("The taxpayer ID is not valid."),
    "invalid_threshold": N_("The threshold is not valid; enter an amount."),
    "invalid_username": N_(
        "The username must be 3 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit."),
    "invalid_workspace_name": N_("The workspace name must be 1 to 200 visible characters."),
    "invoice_address_required": N_("Choose a mailing address for a paper invoice."),
    "invoice_already_decided": N_("This invoice request was decided already."),
    "invoice_needs_certification": N_(
        "Invoices need a certified account; complete the real-name authentication first."),
    "invoice_not_found": N_("No such invoice request."),
    "invoice_profile_not_found": N_("No such invoice information."),
    "invoice_title_mismatch": N_("The invoice title must match the certified name."),
    "mail_unavailable": N_("The mail could not be sent; try again."),
    "mailing_address_not_found": N_("No such mailing address."),
    "marketplace_not_configured": N_("This marketplace is not available on this site."),
    "marketplace_refused": N_("The marketplace refused the request."),
    "marketplace_unavailable": N_("The marketplace cannot be reached; try again later."),
    "member_limit": N_("The workspace has the most members it may have; remove one first."),
    "member_not_found": N_("No such member in this workspace."),
    "method_not_available": N_("This settlement method is not available for this account."),
    "no_bills": N_("There is no bill for this period."),
    "not_bound": N_("The workspace is not bound to this account."),
    "nothing_to_invoice": N_("There is nothing to invoice."),
    "owner_not_assignable": N_("A workspace has one owner; the owner role cannot be given."),
    "owner_only": N_("Only the workspace owner may do this; ask the owner."),
    "owner_or_admin_only": N_(
        "Only the workspace owner and administrators may do this; ask one of them."),
    "owner_protected": N_("The owner's role cannot be changed or removed."),
    "promotion_closed": N_("This request was answered or withdrawn already."),
    "promotion_not_found": N_("No such request for a workspace you pay for."),
    "role_in_use": N_("Members hold this role; give them another role first."),
    "role_limit": N_("The workspace has the most custom roles it may have; delete one first."),
    "role_name_taken": N_("A role with this name exists."),
    "same_account": N_("That is this account already."),
    "settlement_change_limit": N_("The settlement method changes at most once a month."),
    "settlement_unchanged": N_("The workspace settles this way already."),
    "subscription_ended": N_("The marketplace subscription has ended."),
    "terms_not_accepted": N_("Accept the agreement to continue."),
    "ticket_invalid": N_(
        "This link is used or expired; open the Billing Center from the console again."),
    "too_many_attempts": N_("Too many attempts; wait and try again later."),
    "unauthorized": N_("Sign in again."),
    "unknown_code": N_("No such code; check it."),
    "unknown_item": N_("Unknown billing item."),
    "unknown_role": N_("No such custom role in this workspace."),
    "username_taken": N_("This username is taken; choose another."),
    "workspace_dissolved": N_("The workspace is dissolved."),
    "workspace_not_active": N_("The workspace is not active."),
    "workspace_not_bound": N_("The workspace is not bound to a Billing Center account."),
    "workspace_not_found": N_("No such workspace among yours."),
    "wrong_code": N_("The code is not right."),
    "wrong_password": N_("The current password is wrong."),
    "password_unchanged": N_("The new password is the current one; choose another."),
    "password_mismatch": N_("The new password was not typed the same twice."),
}


def in_language(error: Refused, language: str, gettext: Callable[[str], str]) -> str:
    """What the page shows of ``error``: the service's words in English, the code's
    translated text in another language (the service's words when the code has none)."""
    if language == "en" or error.code not in TEXTS:
        return error.message
    return gettext(TEXTS[error.code])
