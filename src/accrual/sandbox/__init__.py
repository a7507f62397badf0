"""Faithful local emulators of the cloud marketplaces, shipped with Accrual.

Each speaks its vendor's real protocol so that the vendor's own client library
(boto3 for AWS) works against it, and enforces the vendor's documented rules
(marketplaces.md §6). Neither side of Accrual imports them.
"""
