"""Domain errors of the review engine, each with a message a user can act on."""


class QuorumError(Exception):
    """Base of every refusal the review engine explains to a user."""


class PolicyInvalid(QuorumError):
    """A policy file or form failed validation; `problems` lists each `place: problem`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class NoPolicy(QuorumError):
    """No policy covers this (model, target): it cannot be requested."""


class AmbiguousPolicy(QuorumError):
    """Two policies are equally specific for one (model, target)."""
