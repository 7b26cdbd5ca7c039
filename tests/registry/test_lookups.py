"""Finding the model and version an address names (`registry.lookups`): one validation for the
registry's version page and the review app's promotion form."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from registry.lookups import (
    MAX_VERSION,
    NAME_MAX,
    model_or_404,
    model_version_or_404,
    version_or_404,
)
from tests.factories import make_model, make_user, make_version

pytestmark = pytest.mark.django_db

# The two pages that read /models/<name>/versions/<version>/.
PAGES = ["registry:version_detail", "reviews:request_new"]


@pytest.fixture
def fraud():
    model = make_model("fraud")
    make_version(model, 1)
    make_version(model, MAX_VERSION)
    return model


@pytest.fixture
def browser(client):
    client.force_login(make_user("reviewer"))
    return client


def text_with_scripts(response) -> str:
    """The page's text as `tests.pages.text_of` reads it, but with its scripts' text kept: an
    overlong name must appear nowhere on the page."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("version", ["1", str(MAX_VERSION)])
def test_a_version_is_found_on_both_pages(browser, fraud, page, version):
    response = browser.get(reverse(page, args=["fraud", version]))

    assert response.status_code == 200


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("version", ["abc", "1.5", "-1", "٣", "1e3", "9" * 13])
def test_a_version_that_is_not_a_number_is_a_404_saying_so(browser, fraud, page, version):
    response = browser.get(reverse(page, args=["fraud", version]))

    assert response.status_code == 404
    assert (
        f"“{version}” is not a version number: use a whole number from 1 to "
        in text_with_scripts(response)
    )


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("version", ["0", "2", str(MAX_VERSION + 1), "9" * 12])
def test_a_version_the_model_lacks_is_a_404_naming_it(browser, fraud, page, version):
    response = browser.get(reverse(page, args=["fraud", version]))

    assert response.status_code == 404
    assert f"Model “fraud” has no version {int(version)}." in text_with_scripts(response)


@pytest.mark.parametrize("page", PAGES)
def test_an_unknown_or_overlong_model_name_is_a_404_saying_so(browser, fraud, page):
    unknown = browser.get(reverse(page, args=["nope", "1"]))
    overlong = browser.get(reverse(page, args=["m" * (NAME_MAX + 1), "1"]))

    assert unknown.status_code == overlong.status_code == 404
    assert "There is no registered model named “nope”." in text_with_scripts(unknown)
    assert (
        f"There is no registered model with a name of {NAME_MAX + 1} characters: names have at "
        f"most {NAME_MAX}." in text_with_scripts(overlong)
    )
    assert "m" * (NAME_MAX + 1) not in text_with_scripts(overlong)


def test_the_version_comes_with_its_model_loaded(fraud, django_assert_num_queries):
    model = model_or_404("fraud")

    with django_assert_num_queries(1):
        version = version_or_404(model, "1")
        assert version.model.name == "fraud"


def test_a_version_named_by_its_address_costs_one_query_with_its_model(
    fraud, django_assert_num_queries
):
    with django_assert_num_queries(1):
        version = model_version_or_404("fraud", "1")
        assert (version.model.name, version.version) == ("fraud", 1)


@pytest.mark.parametrize(
    ("name", "version", "said"),
    [
        ("nope", "1", "There is no registered model named “nope”."),
        ("nope", "x", "There is no registered model named “nope”."),
        ("m" * (NAME_MAX + 1), "1", f"names have at most {NAME_MAX}."),
        ("fraud", "x", "“x” is not a version number"),
        ("fraud", "2", "Model “fraud” has no version 2."),
    ],
)
def test_a_version_named_by_its_address_refuses_as_the_two_lookups_do(fraud, name, version, said):
    from django.http import Http404

    with pytest.raises(Http404) as refused:
        model_version_or_404(name, version)
    with pytest.raises(Http404) as separately:
        version_or_404(model_or_404(name), version)
    assert said in str(refused.value)
    assert str(refused.value) == str(separately.value)
