"""The issue-12 flaw profiles weaken exactly the rule they name (pure parts; the
probe's calibration run covers the running device)."""

from __future__ import annotations

from device.credentials import PolicyContext, password_problems

CONTEXT = PolicyContext(username="alice", serial="RC7KQ2M4XZPA", model="RC-1080", vendor="refcam")


def test_the_off_by_one_flaw_moves_each_minimum_down_by_exactly_one() -> None:
    fourteen, thirteen = "qwhzkvtrmnbxpl", "qwhzkvtrmnbxp"
    assert password_problems(fourteen, policy="nist-800-63b", context=CONTEXT)  # secure: 15 needed
    assert password_problems(fourteen, policy="nist-800-63b", context=CONTEXT, unsafe_minimum_off_by_one=True) == []
    assert password_problems(thirteen, policy="nist-800-63b", context=CONTEXT, unsafe_minimum_off_by_one=True)
    seven = "Qw7zKv#"  # 3 classes, one below 8
    assert password_problems(seven, policy="kr-terminal", context=CONTEXT)
    assert not any(
        "character classes" in r
        for r in password_problems(seven, policy="kr-terminal", context=CONTEXT, unsafe_minimum_off_by_one=True)
    )


def test_identity_words_are_refused_only_while_the_context_names_them() -> None:
    built = "RC7KQ2M4XZPA-RC-1080"
    assert any("serial" in r for r in password_problems(built, policy="nist-800-63b", context=CONTEXT))
    blind = PolicyContext(username="alice", serial="", model="", vendor="")  # what the flaw hands the policy
    assert password_problems(built, policy="nist-800-63b", context=blind) == []
