"""Online top-ups: payment-gateway adapters behind one Protocol, and the orders they pay."""
