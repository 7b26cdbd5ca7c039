"""`quorum`: request model promotions and wait for the human decision, from a shell or a CI job.

It talks to Quorum's REST API only, with the standard library and `requests`: no Django, no
project modules, so it runs from a CI image that has nothing else installed. `quorum verify`
also reads MLflow's REST API and needs `cryptography` and `securesystemslib` to check the
signed approval proof.
"""

__version__ = "0.1.0"
