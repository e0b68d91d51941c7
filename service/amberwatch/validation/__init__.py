"""Volunteer validation and field checks (pure rules: no sessions, no HTTP).

``rules`` holds the answers, rejection reasons, the agreement rule and how an item's final answer is settled
(field check > expert decision > agreed votes); ``field`` holds the field-check states and the disturbance scale.
"""
