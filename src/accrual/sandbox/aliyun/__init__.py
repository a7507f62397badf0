"""A faithful local Alibaba Cloud Marketplace (marketplaces.md §2, §6 Alibaba), one
:class:`AliyunSandbox` per profile: :data:`CHINA` (``/sandbox/aliyun``) and
:data:`INTERNATIONAL` (``/sandbox/aliyun-intl``), the same contract with their own
endpoint, keys and currency. :func:`aliyun_router` serves one; :func:`create_app`
is the standalone app of ``accrual sandbox aliyun``.
"""

from accrual.sandbox.aliyun.app import aliyun_router, create_app
from accrual.sandbox.aliyun.emulator import AliyunSandbox, ControlError
from accrual.sandbox.aliyun.state import CHINA, INTERNATIONAL, Profile, SandboxConfig

__all__ = ["CHINA", "INTERNATIONAL", "AliyunSandbox", "ControlError", "Profile",
           "SandboxConfig", "aliyun_router", "create_app"]
