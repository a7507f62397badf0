"""How one side reaches the other: one Protocol per direction, several transports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from accrual.contract.messages import (
    ActivatedWorkspace,
    ActivationCheck,
    ActivationGrant,
    BindingChanged,
    BindingCodeConfirmation,
    BindingCodeRequest,
    BindingCodeSent,
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    RegistrationResult,
    SignInTicket,
    SignInTicketRequest,
    WalletOverview,
)


class PeerUnavailable(Exception):
    """The other side could not be reached or failed; the call may be retried."""


class PeerRefused(Exception):
    """The other side answered with a definite refusal (a stable error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BillingCenterPort(Protocol):
    """What the console may ask of the billing center."""

    def register_account(self, request: RegistrationRequest) -> RegistrationResult: ...

    def confirm_registration(
        self, registration_key: str, confirmation: RegistrationConfirmation
    ) -> None: ...

    def cancel_registration(self, registration_key: str) -> None: ...

    def request_binding_code(self, request: BindingCodeRequest) -> BindingCodeSent: ...

    def confirm_binding_code(self, confirmation: BindingCodeConfirmation) -> BindingChanged: ...

    def check_activation(self, request: ActivationCheck) -> ActivationGrant:
        """Whether a new workspace may be made through a marketplace activation (stores
        nothing); refused with ``activation_not_found``, ``activation_expired``,
        ``activation_not_claimed``, ``activation_used`` or ``subscription_ended``."""
        ...

    def bind_activated_workspace(self, workspace: ActivatedWorkspace) -> BindingChanged:
        """Bind a workspace made after :meth:`check_activation`; repeatable."""
        ...

    def wallet_overview(self, billing_account_id: str) -> WalletOverview:
        """What the account holds and owes now; refused ``account_not_found``."""
        ...

    def sign_in_ticket(self, request: SignInTicketRequest) -> SignInTicket:
        """A one-time, short-lived ticket into the billing center as the account the
        workspace is bound to; refused ``workspace_not_bound`` when it is bound elsewhere.
        The console decides who may ask (the workspace's owner)."""
        ...

    def deliver(self, messages: Sequence[Envelope]) -> list[str]:
        """Apply messages; returns the ids now applied (new or earlier)."""
        ...


class ConsolePort(Protocol):
    """What the billing center may ask of a console site."""

    def deliver(self, messages: Sequence[Envelope]) -> list[str]: ...
