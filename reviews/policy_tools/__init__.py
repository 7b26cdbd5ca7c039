"""What-if tools for policy authors, which create nothing: `explanation` (which policy decides a
version's move to a target and why, what it needs and what its gates say now: the API's
`GET /policies/explain`, `quorum policy explain`, the version page's panel) and `cases` (a file of
cases checked against a policy file offline: `POST /policies/test`, `quorum policy test`,
`manage.py test_policies`). Both size a request as opening one would (`reviews.decisions.explain`).
"""
