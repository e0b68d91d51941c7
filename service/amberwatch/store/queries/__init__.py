"""All SQL of the service, one module per aggregate (scenes, runs, detections, sites, events, stats, layers, ...).

Functions take an open ``Session`` (the caller owns the transaction) and typed filter objects, and return rows as
plain dicts or tuples. No HTTP, no CLI, no validation messages: callers validate input before it gets here.
"""
