"""A faithful local Azure Marketplace (marketplaces.md §4, §6 Azure).

:class:`AzureSandbox` holds the state and plays the marketplace and its Entra ID;
:func:`azure_router` serves it (token endpoints and keys, the SaaS Fulfillment API
v2, metering, the control API); :func:`create_app` is the standalone app of
``accrual sandbox azure``.
"""

from accrual.sandbox.azure.app import azure_router, create_app
from accrual.sandbox.azure.emulator import DEFAULT_PREFIX, AzureSandbox, ControlError
from accrual.sandbox.azure.state import API_VERSION, MARKETPLACE_RESOURCE, SandboxConfig

__all__ = ["API_VERSION", "DEFAULT_PREFIX", "MARKETPLACE_RESOURCE", "AzureSandbox",
           "ControlError", "SandboxConfig", "azure_router", "create_app"]
