"""`manage.py sync_registry [--full] [--model NAME]`: bring the mirror up to date with MLflow.

Prints a summary line, then one line per model or version that could not be mirrored, with why;
those do not make the command fail (the rest was mirrored). It fails when the sync could not
finish, with the reason.
"""

from typing import TextIO, cast

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from registry.sync import SyncError, sync_registry


class Command(BaseCommand):
    help = (
        "Mirror the MLflow Model Registry: incremental by default, --full to re-read everything "
        "(and notice deleted versions), --model NAME for one model."
    )

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--full", action="store_true", help="re-read every model, version, run")
        scope.add_argument("--model", metavar="NAME", help="sync only this registered model")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, full=False, model=None, no_progress=False, **options):
        bar = tqdm(
            total=1,
            unit="step",
            disable=no_progress or options["verbosity"] == 0,
            # The stream under Django's wrapper, which would end each redraw with a newline. The
            # stubs type the wrapper's other attributes as callables.
            file=cast(TextIO, self.stderr._out),
            bar_format="{desc:<32} {bar:24} {n_fmt}/{total_fmt} [{elapsed}]",
        )

        def progress(step: str, done: int, total: int) -> None:
            bar.total = total
            bar.set_description(step)
            bar.update(done - bar.n)

        try:
            result = sync_registry(full=full, model=model, progress=progress)
        except SyncError as error:
            raise CommandError(f"sync failed, nothing was changed: {error}") from error
        finally:
            bar.close()
        self.stdout.write(str(result))
        for item in result.skipped:
            where = f"{item['model']} v{item['version']}" if item["version"] else item["model"]
            label = "mirrored in part" if item.get("partial") else "not mirrored"
            self.stdout.write(self.style.WARNING(f"  {label}: {where}: {item['reason']}"))
