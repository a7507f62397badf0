"""A faithful local AWS Marketplace for SaaS (marketplaces.md §1, §6 AWS).

:class:`AwsSandbox` holds the state and plays the marketplace; :func:`aws_router`
serves it (the AWS JSON 1.1 services boto3 speaks, SNS's certificate, the control
API); :func:`create_app` is the standalone app of ``accrual sandbox aws``.
"""

from accrual.sandbox.aws.app import aws_router, create_app
from accrual.sandbox.aws.emulator import DEFAULT_PREFIX, AwsSandbox, ControlError
from accrual.sandbox.aws.state import SandboxConfig

__all__ = ["DEFAULT_PREFIX", "AwsSandbox", "ControlError", "SandboxConfig", "aws_router",
           "create_app"]
