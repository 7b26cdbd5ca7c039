"""A review as a conversation: comments on a request, and its activity timeline.

- `comments`: posting a comment without a vote (a row and its audit event, in one transaction);
- `timeline`: what happened to a request, read from the audit log.
"""
