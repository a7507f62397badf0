"""HTTP transports for the ports, for deployments where the sides run apart."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

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
from accrual.contract.ports import PeerRefused, PeerUnavailable


class _HttpPeer:
    def __init__(self, client: httpx.Client, service_token: str) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {service_token}"}

    def _call(self, method: str, path: str, json: object | None = None) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=json, headers=self._headers)
        except httpx.HTTPError as error:
            raise PeerUnavailable(f"{method} {path}: {error}") from error
        if response.status_code >= 500:
            raise PeerUnavailable(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            try:
                refusal = response.json()["error"]
                code, message = refusal["code"], refusal["message"]
            except (ValueError, KeyError, TypeError):
                code, message = f"http_{response.status_code}", response.text[:200]
            raise PeerRefused(code, message)
        return response

    def deliver(self, messages: Sequence[Envelope]) -> list[str]:
        body = {"messages": [m.model_dump(mode="json") for m in messages]}
        return list(self._call("POST", self._inbox_path, body).json()["applied"])

    _inbox_path = ""


class HttpBillingCenter(_HttpPeer):
    _inbox_path = "/billing/v1/internal/inbox"

    def register_account(self, request: RegistrationRequest) -> RegistrationResult:
        response = self._call("POST", "/billing/v1/internal/registrations",
                              request.model_dump(mode="json"))
        return RegistrationResult.model_validate(response.json())

    def confirm_registration(
        self, registration_key: str, confirmation: RegistrationConfirmation
    ) -> None:
        self._call("POST", f"/billing/v1/internal/registrations/{registration_key}/confirm",
                   confirmation.model_dump(mode="json"))

    def cancel_registration(self, registration_key: str) -> None:
        self._call("DELETE", f"/billing/v1/internal/registrations/{registration_key}")


    def request_binding_code(self, request: BindingCodeRequest) -> BindingCodeSent:
        response = self._call("POST", "/billing/v1/internal/binding-codes",
                              request.model_dump(mode="json"))
        return BindingCodeSent.model_validate(response.json())

    def confirm_binding_code(self, confirmation: BindingCodeConfirmation) -> BindingChanged:
        response = self._call("POST", "/billing/v1/internal/binding-codes/confirm",
                              confirmation.model_dump(mode="json"))
        return BindingChanged.model_validate(response.json())

    def check_activation(self, request: ActivationCheck) -> ActivationGrant:
        response = self._call("POST", "/billing/v1/internal/activated-workspaces/check",
                              request.model_dump(mode="json"))
        return ActivationGrant.model_validate(response.json())

    def bind_activated_workspace(self, workspace: ActivatedWorkspace) -> BindingChanged:
        response = self._call("POST", "/billing/v1/internal/activated-workspaces",
                              workspace.model_dump(mode="json"))
        return BindingChanged.model_validate(response.json())


    def wallet_overview(self, billing_account_id: str) -> WalletOverview:
        response = self._call("GET", f"/billing/v1/internal/accounts/{billing_account_id}/wallet")
        return WalletOverview.model_validate(response.json())

    def sign_in_ticket(self, request: SignInTicketRequest) -> SignInTicket:
        response = self._call("POST", "/billing/v1/internal/sign-in-tickets",
                              request.model_dump(mode="json"))
        return SignInTicket.model_validate(response.json())


class HttpConsole(_HttpPeer):
    _inbox_path = "/console/v1/internal/inbox"
