"""The pure core: decisions without I/O. Imports pydantic, datetime, zoneinfo and our schemas only."""
