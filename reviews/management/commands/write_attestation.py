"""`manage.py write_attestation ID [ID ...]`: sign and write executed requests' proofs now."""

from django.core.management.base import BaseCommand, CommandError

from reviews.execution import attestation
from reviews.models import Execution, TransitionRequest


class Command(BaseCommand):
    help = (
        "Write the signed approval proof of carried-out requests to their versions in MLflow "
        "(after the worker's attempts failed, or for requests carried out before proofs)."
    )

    def add_arguments(self, parser):
        parser.add_argument("request_ids", nargs="+", type=int, metavar="ID")

    def handle(self, *args, request_ids, **options):
        failed = []
        for request_id in request_ids:
            request = TransitionRequest.objects.filter(pk=request_id).first()
            if request is None:
                raise CommandError(f"there is no request #{request_id}")
            if request.execution != Execution.DONE:
                raise CommandError(
                    f"request #{request_id} was not carried out ({request.get_execution_display()}"
                    "): only a version that moved gets a proof"
                )
        for request_id in request_ids:
            try:
                self.stdout.write(
                    f"request #{request_id}: {attestation.write(request_id, final=True)}"
                )
            except Exception as error:
                failed.append(request_id)
                self.stderr.write(f"request #{request_id}: the proof was not written: {error}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(request_ids)} proofs were not written")
