"""Endpoint handlers, grouped by concern; each module returns its `Route`s."""
