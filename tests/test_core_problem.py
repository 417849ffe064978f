"""Problems core, table-driven: signatures (volatile labels, `by`), the recurrence decision (after/within), and
the state machine of PATCH and known errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.core.problem import (
    VOLATILE_LABELS,
    Latest,
    Recurrence,
    State,
    default_title,
    display_id,
    known_error_refusal,
    parse_id,
    recur,
    refusal,
    reopen_state,
    signature,
    signature_labels,
)
from itsmd.core.rule import ProblemPolicy, Rule

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WEEK = 7 * 86400.0


@pytest.mark.parametrize(
    ("group_by", "by", "names"),
    [
        (("cluster", "instance"), None, ("cluster",)),
        (("namespace", "pod", "container", "cluster"), None, ("cluster", "namespace")),
        (tuple(VOLATILE_LABELS), None, ()),
        (("service", "alertname"), None, ("alertname", "service")),  # sorted
        (("cluster", "instance"), ("instance",), ("instance",)),  # `by` may name a volatile label on purpose
        (("cluster", "instance"), ("job", "cluster", "job"), ("cluster", "job")),  # beyond group_by; once each
        (("cluster",), (), ()),
    ],
)
def test_signature_labels(group_by: tuple[str, ...], by: tuple[str, ...] | None, names: tuple[str, ...]) -> None:
    assert signature_labels(group_by, by) == names


def test_every_volatile_label_of_the_design_is_ignored() -> None:
    design = {"instance", "pod", "container", "container_id", "pod_template_hash", "replica", "endpoint", "uid"}
    assert design == VOLATILE_LABELS


@pytest.mark.parametrize(
    ("labels_a", "labels_b", "same"),
    [
        ({"cluster": "c1", "instance": "a:9100"}, {"cluster": "c1", "instance": "b:9100"}, True),
        ({"cluster": "c1", "pod": "web-7f9c-abc12", "namespace": "shop"},
         {"cluster": "c1", "pod": "web-7f9c-xyz98", "namespace": "shop"}, True),
        ({"cluster": "c1", "instance": "a"}, {"cluster": "c2", "instance": "a"}, False),
        ({"cluster": "c1"}, {"cluster": "c1", "severity": "critical"}, True),  # not in the signature
        ({"cluster": ""}, {}, True),  # an empty label is no label
    ],
)
def test_recurrences_on_different_instances_share_a_signature(
    labels_a: dict[str, str], labels_b: dict[str, str], same: bool
) -> None:
    rule = Rule("r", (), ("cluster", "namespace", "instance", "pod"), problem=ProblemPolicy(3, WEEK))
    assert (rule.signature(labels_a) == rule.signature(labels_b)) is same


def test_signature_text_names_the_rule_and_is_unambiguous() -> None:
    assert signature("disk-low", ("cluster",), {"cluster": "c1"}) == 'disk-low{cluster="c1"}'
    assert signature("r", ("a", "b"), {"a": 'x", b="y'}) != signature("r", ("a", "b"), {"a": "x", "b": "y"})
    assert signature("r", (), {"a": "x"}) == "r{}"


def latest(state: State, known: bool = False, resolved_ago: float | None = None) -> Latest:
    resolved_at = NOW - timedelta(seconds=resolved_ago) if resolved_ago is not None else None
    return Latest(state, known, resolved_at)


@pytest.mark.parametrize(
    ("after", "within", "newest", "recent", "action"),
    [
        # no problem yet: count the signature's unlinked incidents within `within`, this one included
        (3, WEEK, None, 1, Recurrence.NONE),
        (3, WEEK, None, 2, Recurrence.NONE),
        (3, WEEK, None, 3, Recurrence.OPEN),
        (3, WEEK, None, 7, Recurrence.OPEN),  # e.g. a policy tightened by a reload
        (1, 60.0, None, 1, Recurrence.OPEN),  # after: 1 makes every incident a problem
        # an unresolved problem takes every new incident, whatever the counts and even without a policy
        (3, WEEK, latest(State.OPEN), 1, Recurrence.ATTACH),
        (3, WEEK, latest(State.INVESTIGATING), 1, Recurrence.ATTACH),
        (None, 0.0, latest(State.INVESTIGATING), 1, Recurrence.ATTACH),
        (3, WEEK, latest(State.KNOWN_ERROR, known=True), 1, Recurrence.KNOWN_ERROR),
        (None, 0.0, latest(State.KNOWN_ERROR, known=True), 1, Recurrence.KNOWN_ERROR),
        (3, WEEK, latest(State.INVESTIGATING, known=True), 1, Recurrence.KNOWN_ERROR),  # the record decides
        # a resolved problem reopens on a recurrence within `within` of its resolution; later ones start afresh
        (3, 3600.0, latest(State.RESOLVED, resolved_ago=3600.0), 1, Recurrence.REOPEN),
        (3, 3600.0, latest(State.RESOLVED, known=True, resolved_ago=60.0), 1, Recurrence.REOPEN),
        (3, 3600.0, latest(State.RESOLVED, resolved_ago=3601.0), 1, Recurrence.NONE),
        (3, 3600.0, latest(State.RESOLVED, resolved_ago=3601.0), 3, Recurrence.OPEN),
        (None, 0.0, latest(State.RESOLVED, resolved_ago=1.0), 5, Recurrence.NONE),  # no policy: nothing automatic
        # a closed problem is done: recurrences count toward a new one
        (3, WEEK, latest(State.CLOSED), 2, Recurrence.NONE),
        (3, WEEK, latest(State.CLOSED), 3, Recurrence.OPEN),
        (None, 0.0, None, 9, Recurrence.NONE),
    ],
)
def test_recurrence_decision(after: int | None, within: float, newest: Latest | None, recent: int,
                             action: Recurrence) -> None:
    decision = recur(after, within, newest, recent, NOW)
    assert decision.action == action and decision.reason


def test_recurrence_reasons_say_how_far_along() -> None:
    assert recur(3, WEEK, None, 2, NOW).reason == "2 of 3 incidents of the signature within 604800s"
    assert recur(3, WEEK, None, 3, NOW).reason == "3 incidents of the signature within 604800s (after 3)"
    assert recur(None, 0.0, None, 1, NOW).reason == "the rule has no problem policy"


@pytest.mark.parametrize(("known", "state"), [(False, State.INVESTIGATING), (True, State.KNOWN_ERROR)])
def test_a_reopened_problem_goes_back_to_its_known_error_or_to_investigating(known: bool, state: State) -> None:
    assert reopen_state(known) == state


S = State
# (from, to): allowed without a known error recorded / with one
TRANSITIONS = {
    (S.OPEN, S.INVESTIGATING): (True, True), (S.OPEN, S.KNOWN_ERROR): (False, True),
    (S.OPEN, S.RESOLVED): (True, True), (S.OPEN, S.CLOSED): (True, True),
    (S.INVESTIGATING, S.OPEN): (False, False), (S.INVESTIGATING, S.KNOWN_ERROR): (False, True),
    (S.INVESTIGATING, S.RESOLVED): (True, True), (S.INVESTIGATING, S.CLOSED): (True, True),
    (S.KNOWN_ERROR, S.OPEN): (False, False), (S.KNOWN_ERROR, S.INVESTIGATING): (True, True),
    (S.KNOWN_ERROR, S.RESOLVED): (True, True), (S.KNOWN_ERROR, S.CLOSED): (True, True),
    (S.RESOLVED, S.OPEN): (False, False), (S.RESOLVED, S.INVESTIGATING): (True, True),
    (S.RESOLVED, S.KNOWN_ERROR): (False, True), (S.RESOLVED, S.CLOSED): (True, True),
    (S.CLOSED, S.OPEN): (False, False), (S.CLOSED, S.INVESTIGATING): (False, False),
    (S.CLOSED, S.KNOWN_ERROR): (False, False), (S.CLOSED, S.RESOLVED): (False, False),
}


@pytest.mark.parametrize(("move", "allowed"), TRANSITIONS.items(), ids=[f"{a}->{b}" for a, b in TRANSITIONS])
def test_patch_transitions(move: tuple[State, State], allowed: tuple[bool, bool]) -> None:
    start, target = move
    for known, ok in zip((False, True), allowed, strict=True):
        why = refusal(start, target, known)
        assert (why is None) is ok, (start, target, known, why)


def test_every_pair_of_states_is_in_the_table_and_staying_put_is_no_conflict() -> None:
    assert {(a, b) for a in State for b in State if a != b} == set(TRANSITIONS)
    assert all(refusal(s, s, known) is None for s in State for known in (False, True))


def test_refusals_explain() -> None:
    assert refusal(S.CLOSED, S.OPEN, False) == "cannot move a problem from closed to open"
    assert refusal(S.INVESTIGATING, S.OPEN, False) == \
        "cannot move a problem from investigating to open (only to resolved or closed)"
    assert "PUT /api/v1/problems/{id}/known-error" in (refusal(S.OPEN, S.KNOWN_ERROR, False) or "")


@pytest.mark.parametrize(
    ("state", "ok"),
    [(S.OPEN, True), (S.INVESTIGATING, True), (S.KNOWN_ERROR, True), (S.RESOLVED, False), (S.CLOSED, False)],
)
def test_known_errors_are_recorded_on_unresolved_problems(state: State, ok: bool) -> None:
    assert (known_error_refusal(state) is None) is ok


@pytest.mark.parametrize(
    ("text", "number"),
    [("PRB-12", 12), ("PRB-0", 0), ("INC-12", None), ("PRB-", None), ("PRB-x", None), ("prb-1", None),
     ("PRB-" + "9" * 19, None), ("PRB--1", None)],
)
def test_ids(text: str, number: int | None) -> None:
    assert parse_id(text) == number
    if number is not None:
        assert display_id(number) == text


def test_default_title_is_bounded() -> None:
    assert default_title('disk-low{cluster="c1"}') == 'Recurring: disk-low{cluster="c1"}'
    assert len(default_title("x" * 5000)) == 1000
