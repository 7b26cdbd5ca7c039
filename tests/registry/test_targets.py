"""registry.targets: a stage or an @alias, parsed once, and what each kind of target means."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from registry.models import Stage
from registry.targets import NotATarget, Target
from tests.mlflow_registry import register_with_metrics

NOT_A_TARGET = "is not a stage (None, Staging, Production, Archived) or an @alias"


@dataclass
class Placed:
    version: int = 1
    stage: str = Stage.NONE.value
    aliases: tuple[str, ...] = ()


@pytest.mark.parametrize("stage", ["None", "Staging", "Production", "Archived"])
def test_a_stage_parses_as_that_stage_and_prints_as_it_was_written(stage):
    target = Target.parse(stage)

    assert target.stage == Stage(stage)
    assert not target.is_alias and target.alias == ""
    assert str(target) == stage


@pytest.mark.parametrize("alias", ["champion", "a", "blue-green_2", "V1x", "x" * 255])
def test_an_alias_parses_without_its_at_sign_and_prints_with_it(alias):
    target = Target.parse(f"@{alias}")

    assert target.is_alias and target.alias == alias
    assert target.stage is None
    assert str(target) == f"@{alias}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@",
        "@bad alias",
        "@champion!",
        "@" + "x" * 256,
        "production",
        "Prod",
        "champion",
        " Production",
        "@latest",
        "@LATEST",
        "@v1",
        "@V42",
        "@champion\n",
        "Production\n",
    ],
)
def test_anything_else_is_refused_saying_what_a_target_is(text):
    with pytest.raises(NotATarget) as refused:
        Target.parse(text)

    assert str(refused.value) == f"{text!r} {NOT_A_TARGET}"


def test_a_refusal_is_a_value_error():
    assert issubclass(NotATarget, ValueError)


def test_parsing_the_same_text_twice_gives_equal_targets():
    assert Target.parse("@champion") == Target.parse("@champion") == Target(alias="champion")
    assert Target.parse("Production") == Target(stage=Stage.PRODUCTION)
    assert Target.parse("Production") != Target.parse("Staging")


@pytest.mark.parametrize(
    ("text", "applies"),
    [("Staging", True), ("Production", True), ("Archived", False), ("None", False)],
)
def test_archive_existing_applies_only_to_staging_and_production(text, applies):
    assert Target.parse(text).archive_existing_applies is applies


def test_an_alias_archives_nothing():
    assert not Target.parse("@champion").archive_existing_applies


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("Staging", True),
        ("Production", True),
        ("@champion", True),
        ("Archived", False),
        ("None", False),
    ],
)
def test_only_aliases_staging_and_production_have_a_holder_to_compare_with(text, held):
    assert Target.parse(text).has_holder is held


def test_a_stage_is_held_by_a_version_in_that_stage():
    production = Target.parse("Production")

    assert production.is_held_by(Placed(stage="Production"))
    assert not production.is_held_by(Placed(stage="Staging", aliases=("Production",)))


def test_an_alias_is_held_by_a_version_carrying_it_whatever_its_stage():
    champion = Target.parse("@champion")

    assert champion.is_held_by(Placed(stage="Archived", aliases=("challenger", "champion")))
    assert not champion.is_held_by(Placed(stage="Production", aliases=("challenger",)))


def test_move_sets_an_alias_and_transitions_a_stage_in_mlflow(mlflow_client, unique_name):
    register_with_metrics(mlflow_client, unique_name, {"accuracy": 0.9}, versions=2)

    Target.parse("@champion").move(mlflow_client, unique_name, 2)
    Target.parse("Production").move(mlflow_client, unique_name, 1)

    assert mlflow_client.get_version(unique_name, 2).aliases == ("champion",)
    assert mlflow_client.get_version(unique_name, 1).stage == "Production"
    assert Target.parse("@champion").is_held_by(mlflow_client.get_version(unique_name, 2))


def test_move_archives_the_stages_holders_only_when_asked(mlflow_client, unique_name):
    register_with_metrics(mlflow_client, unique_name, {"accuracy": 0.9}, versions=3)
    production = Target.parse("Production")
    production.move(mlflow_client, unique_name, 1)

    production.move(mlflow_client, unique_name, 2)
    assert mlflow_client.get_version(unique_name, 1).stage == "Production"

    production.move(mlflow_client, unique_name, 3, archive_existing=True)
    stages = {v.version: v.stage for v in mlflow_client.list_versions(unique_name)}
    assert stages == {1: "Archived", 2: "Archived", 3: "Production"}


def test_moving_to_archived_ignores_archive_existing_which_mlflow_refuses_there(
    mlflow_client, unique_name
):
    register_with_metrics(mlflow_client, unique_name, {"accuracy": 0.9}, versions=2)
    Target.parse("Archived").move(mlflow_client, unique_name, 1)

    Target.parse("Archived").move(mlflow_client, unique_name, 2, archive_existing=True)

    stages = {v.version: v.stage for v in mlflow_client.list_versions(unique_name)}
    assert stages == {1: "Archived", 2: "Archived"}
