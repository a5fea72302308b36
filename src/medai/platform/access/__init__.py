"""Who may do what: accounts, passwords, sessions and tokens, kiosks, the two-person rule, and the
audit of what was done."""
