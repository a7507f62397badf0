"""The billing center's pure rules: no database, no web framework, no clock reads."""
