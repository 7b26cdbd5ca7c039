"""`manage.py test_policies CASES --policies FILE`: check a policy file against a file of cases,
offline (no database rows written, MLflow not asked): exit 0 when every case passes, 1 with a
line per failing case, 2 for a malformed file, naming each problem's place."""

from django.core.management.base import BaseCommand, CommandError

from reviews.policies.yaml_reader import MAX_FILE_BYTES
from reviews.policy_tools.cases import CasesInvalid, run

EXIT_FAILED = 1
EXIT_MALFORMED = 2


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as stream:
            # One character more than a file may have is enough to refuse it, unparsed.
            return stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}", returncode=2) from error
    except UnicodeDecodeError as error:
        raise CommandError(f"{path} is not UTF-8 text: {error.reason}", returncode=2) from error


class Command(BaseCommand):
    help = (
        "Check every case of a cases file (YAML: model, target, metrics, evidence, and what is "
        "expected) against a policy file, with the code that opens requests; stores nothing."
    )
    # Nothing here reads or writes the database: no check of its migrations either.
    requires_migrations_checks = False
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("cases", help="the cases file (YAML)")
        parser.add_argument("--policies", required=True, help="the policy file (YAML)")

    def handle(self, *args, cases, policies, **options):
        names = {"cases": cases, "policies": policies}
        try:
            results = run(policies=read(policies), cases=read(cases))
        except CasesInvalid as error:
            raise CommandError(
                "malformed, nothing was checked:\n  "
                + "\n  ".join(f"{names[file]}: {problem}" for file, problem in error.problems),
                returncode=EXIT_MALFORMED,
            ) from error
        failed = [result for result in results if not result.passed]
        for result in results:
            if result.passed:
                self.stdout.write(f"ok    {result.name}")
            for difference in result.differences:
                self.stdout.write(f"FAIL  {result.name}: {difference}")
        summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
        if failed:
            raise CommandError(summary, returncode=EXIT_FAILED)
        self.stdout.write(summary)
