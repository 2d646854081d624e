"""Scheduled jobs of the duty registry.

Jobs are module-level functions with serialisable arguments (a database URL, a zone name, a
unit code), so APScheduler can store and rerun them; what they do lives in plain functions
that take a session and the current time, which the tests call directly.
"""
