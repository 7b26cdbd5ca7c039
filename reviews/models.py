"""Review domain models: policies, approver groups, requests, votes and the audit chain.

Filled in by the review engine; the app exists now so URLs and settings have their final shape.
"""
