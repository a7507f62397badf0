"""What crosses the seam between the console and the billing center.

Both sides depend on this package; neither depends on the other.
"""
