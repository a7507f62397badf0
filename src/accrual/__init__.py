"""Accrual: metering and billing for multi-workspace SaaS."""

__version__ = "0.1.0"
