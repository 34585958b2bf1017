"""StemeDB: a database of signed, conflicting claims resolved at read time."""

__version__ = "0.1.0"
