"""A faithful local Huawei Cloud KooGallery (marketplaces.md §3, §6 Huawei).

:class:`HuaweiSandbox` holds the state and plays the marketplace (it sends the V2
activities to the ISV); :func:`huawei_router` serves the usage push and the control
API; :func:`create_app` is the standalone app of ``accrual sandbox huawei``.
"""

from accrual.sandbox.huawei.app import create_app, huawei_router
from accrual.sandbox.huawei.emulator import DEFAULT_PREFIX, ControlError, HuaweiSandbox
from accrual.sandbox.huawei.state import SandboxConfig

__all__ = ["DEFAULT_PREFIX", "ControlError", "HuaweiSandbox", "SandboxConfig", "create_app",
           "huawei_router"]
