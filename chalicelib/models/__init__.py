"""Pydantic models at the boundary: API requests/answers, queue events, stored items."""
