"""What a page's address names: a registered model and one of its versions, or a 404 that says
what is wrong with the address.

The registry's pages and the review app's promotion form read the same
`/models/<name>/versions/<version>/` addresses, so they find what those name here, validated once.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from .models import MODEL_NAME_MAX, ModelVersion, RegisteredModel

# The longest name the mirror holds: a longer one cannot name a model here.
NAME_MAX = MODEL_NAME_MAX
# The largest version number the database column holds; anything above cannot exist.
MAX_VERSION = 2_147_483_647
# More digits than this cannot be a version (MAX_VERSION has ten), whatever their value.
VERSION_DIGITS_MAX = 12


def version_number(raw: str | None) -> int | None:
    """A version number as an address writes it (ASCII digits), or None when it is not one."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > VERSION_DIGITS_MAX:
        return None
    return int(raw)


def _name_or_404(name: str) -> str:
    if len(name) > NAME_MAX:
        raise Http404(
            f"There is no registered model with a name of {len(name):,} characters: "
            f"names have at most {NAME_MAX}."
        )
    return name


def _number_or_404(version: str | int) -> int:
    number = version if isinstance(version, int) else version_number(version)
    if number is None:
        raise Http404(
            f"“{version}” is not a version number: use a whole number from 1 to {MAX_VERSION:,}."
        )
    return number


def _with_packets(versions: QuerySet[ModelVersion], number: int) -> ModelVersion | None:
    # With its evidence packet and content digest in the same query: the pages that show them
    # pay nothing more. The content's file list stays behind: pages show its count.
    if not 0 < number <= MAX_VERSION:
        return None
    packets = versions.select_related("evidence", "content").defer("content__files")
    return packets.filter(version=number).first()


def model_or_404(name: str) -> RegisteredModel:
    """The registered model named `name`, deleted or not; 404 when there is none."""
    model = RegisteredModel.objects.filter(name=_name_or_404(name)).first()
    if model is None:
        raise Http404(f"There is no registered model named “{name}”.")
    return model


def version_or_404(model: RegisteredModel, version: str | int) -> ModelVersion:
    """`model`'s version `version` (a number, or as the address writes it), deleted or not,
    with its model attached; 404 saying why when the address names none."""
    number = _number_or_404(version)
    found = _with_packets(model.versions.all(), number)
    if found is None:
        raise Http404(f"Model “{model.name}” has no version {number}.")
    found.model = model  # already loaded: spare the query
    return found


def model_version_or_404(name: str, version: str | int) -> ModelVersion:
    """`version_or_404(model_or_404(name), version)` in one query when both exist: the version
    with its model loaded; the same 404s when either does not."""
    number = version if isinstance(version, int) else version_number(version)
    found = None
    if number is not None:
        versions = ModelVersion.objects.select_related("model")
        found = _with_packets(versions.filter(model__name=_name_or_404(name)), number)
    if found is None:
        # The 404 that says what is wrong, in the order the two lookups say it.
        return version_or_404(model_or_404(name), version)
    return found
