"""HTTP layer only: Falcon resources, middleware, errors and the OpenAPI document.

Requests go api/ -> service functions -> store/; nothing here touches SQLite.
"""
