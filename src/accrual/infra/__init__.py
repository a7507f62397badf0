"""Technical building blocks both sides use on their own data: engines, outbox, credentials.

No business rules live here, and nothing here imports either side.
"""
