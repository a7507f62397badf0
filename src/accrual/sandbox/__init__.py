"""Faithful local emulators of the cloud marketplaces, shipped with Accrual.

Each speaks its vendor's real protocol so that the vendor's own client library
(boto3 for AWS) works against it, and enforces the vendor's documented rules
(marketplaces.md §6). Neither side of Accrual imports them.

What the four (``aws``, ``aliyun``, ``huawei``, ``azure``) share, and nothing of any
vendor's protocol: :mod:`.emulator` (state behind one lock, the clock, the config,
where it is served), :mod:`.control` (the control API's errors, lookups and shared
routes), :mod:`.faults` (injected fault queues), :mod:`.deliveries` (calls to the
seller and their attempts) and :mod:`.serving` (bounded bodies, the standalone app).
"""
