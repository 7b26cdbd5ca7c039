"""`manage.py load_policies FILE [--dry-run]`: make groups and policies say what FILE says."""

import getpass
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from reviews.errors import PolicyInvalid
from reviews.models import ApprovalPolicy
from reviews.policies.loading import policies_load
from reviews.policies.yaml_reader import MAX_FILE_BYTES


class Command(BaseCommand):
    help = (
        "Validate a policy YAML file completely, then apply it in one transaction: policies in "
        "the file are created or changed, policies not in it are removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="policy file (YAML), or - for standard input")
        parser.add_argument(
            "--dry-run", action="store_true", help="validate and report, change nothing"
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="load only when no policy exists yet (first start of a deployment)",
        )

    stealth_options = ("stdin",)  # call_command(..., stdin=...) reads the file from there

    def handle(self, *args, file, dry_run=False, if_empty=False, **options):
        if if_empty and ApprovalPolicy.objects.exists():
            self.stdout.write("policies exist already: not loading " + file)
            return
        try:
            # One character more than a file may have is enough to refuse it, unparsed.
            if file == "-":
                text = (options.get("stdin") or sys.stdin).read(MAX_FILE_BYTES + 1)
            else:
                with open(file, encoding="utf-8") as stream:
                    text = stream.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror}") from error
        except UnicodeDecodeError as error:
            raise CommandError(f"{file} is not UTF-8 text: {error.reason}") from error
        try:
            report = policies_load(
                text=text,
                dry_run=dry_run,
                # Who ran it, as the machine knows them: the CLI has no Quorum login.
                actor=f"{getpass.getuser()} (load_policies)",
                source=str(Path(file).resolve()) if file != "-" else "standard input",
            )
        except PolicyInvalid as error:
            raise CommandError(
                f"{file} is invalid, nothing was changed:\n  "
                + "\n  ".join(str(problem) for problem in error.problems)
            ) from error
        for line in report.lines():
            self.stdout.write(line)
        for warning in report.warnings:
            self.stderr.write(self.style.WARNING("warning: " + warning))
        if dry_run:
            self.stdout.write("dry run: nothing was changed")
