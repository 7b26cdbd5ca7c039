"""How approvals count: each person once, for one group, placed so that the most slots fill."""

from __future__ import annotations

import itertools
import random

import pytest

from reviews.decisions.counting import assign, shortfall

LEADS_AND_SCIENCE = [("ml-leads", 1), ("data-science", 2)]
BOTH = ["ml-leads", "data-science"]


def best_possible(needs, voters) -> int:
    """The most voters any assignment can count, by trying every one."""
    capacity = dict(needs)
    best = 0
    for choice in itertools.product(*[[None, *groups] for _, groups in voters]):
        used = [group for group in choice if group is not None]
        if all(used.count(group) <= capacity.get(group, 0) for group in set(used)):
            best = max(best, len(used))
    return best


def test_a_person_in_two_groups_fills_one_slot_not_two():
    counted = assign(LEADS_AND_SCIENCE, [("alice", BOTH), ("bob", ["data-science"])])

    assert counted == {"alice": "ml-leads", "bob": "data-science"}
    assert len(counted) == 2  # two people: 1 + 2 needs a third


def test_a_third_different_person_completes_the_quorum():
    counted = assign(
        LEADS_AND_SCIENCE,
        [("alice", BOTH), ("bob", ["data-science"]), ("carol", ["data-science"])],
    )

    assert counted == {"alice": "ml-leads", "bob": "data-science", "carol": "data-science"}


def test_an_earlier_voter_moves_when_that_lets_a_later_one_count():
    # Greedy would leave dave out: alice took the only ml-leads slot first.
    counted = assign(
        LEADS_AND_SCIENCE,
        [("alice", BOTH), ("bob", ["data-science"]), ("dave", ["ml-leads"])],
    )

    assert counted == {"alice": "data-science", "bob": "data-science", "dave": "ml-leads"}


def test_moves_chain_through_several_groups():
    needs = [("a", 1), ("b", 1), ("c", 1)]
    voters = [("x", ["a", "b"]), ("y", ["b", "c"]), ("z", ["a"])]

    # z needs a: x moves to b, which moves y to c.
    assert assign(needs, voters) == {"x": "b", "y": "c", "z": "a"}


def test_a_lone_voter_in_several_groups_counts_for_the_first_in_policy_order():
    assert assign(LEADS_AND_SCIENCE, [("alice", ["data-science", "ml-leads"])]) == {
        "alice": "ml-leads"
    }
    reversed_policy = [("data-science", 2), ("ml-leads", 1)]
    assert assign(reversed_policy, [("alice", BOTH)]) == {"alice": "data-science"}


def test_approvals_beyond_what_the_groups_need_count_for_nothing_first_come_first_counted():
    voters = [(name, ["data-science"]) for name in ("ana", "bo", "cy")]

    assert assign(LEADS_AND_SCIENCE, voters) == {"ana": "data-science", "bo": "data-science"}


def test_groups_the_policy_does_not_require_are_ignored():
    assert assign(LEADS_AND_SCIENCE, [("eve", ["auditors"])]) == {}


def test_the_assignment_is_the_same_every_time_for_the_same_votes():
    rng = random.Random(7)
    needs = [("a", 2), ("b", 1), ("c", 2)]
    for _ in range(50):
        voters = [(n, rng.sample(["a", "b", "c"], rng.randint(1, 3))) for n in range(6)]
        first = assign(needs, voters)
        assert all(assign(needs, list(voters)) == first for _ in range(3))
        # The order groups are listed in a vote does not matter, only the policy's order.
        assert assign(needs, [(n, list(reversed(g))) for n, g in voters]) == first


@pytest.mark.parametrize("seed", range(5))
def test_as_many_approvals_count_as_any_assignment_could_make_count(seed):
    rng = random.Random(seed)
    needs = [("a", 2), ("b", 1), ("c", 1), ("d", 2)]
    for _ in range(200):
        voters = [
            (n, [g for g, _ in needs if rng.random() < 0.4]) for n in range(rng.randint(0, 7))
        ]
        counted = assign(needs, voters)
        assert len(counted) == best_possible(needs, voters), voters
        for group, needed in needs:
            assert list(counted.values()).count(group) <= needed
        assert all(group in dict(voters)[voter] for voter, group in counted.items())


def test_shortfall_says_how_many_slots_distinct_members_cannot_fill():
    members = {"ml-leads": {"alice"}, "data-science": {"alice", "bob"}}
    assert shortfall(LEADS_AND_SCIENCE, members) == 1
    members["data-science"].add("carol")
    assert shortfall(LEADS_AND_SCIENCE, members) == 0
