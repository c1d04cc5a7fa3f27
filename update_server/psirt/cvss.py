"""CVSS scoring through the ``cvss`` library (RedHat), reduced to what the PSIRT needs.

A vector string is scored once, at triage; the result is a frozen
:class:`Score` with the base score and the qualitative severity (CVSS v3.1
specification section 5, CVSS v4.0 section 6: None/Low/Medium/High/Critical).

Example::

    score = score_vector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    assert (score.base_score, score.severity) == (9.8, "critical")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

from .errors import CVSSVectorError

SEVERITIES = ("none", "low", "medium", "high", "critical")
MAX_VECTOR_LENGTH = 512  # characters; a full v4.0 vector with all metrics is ~330


@dataclass(frozen=True)
class Score:
    """A scored CVSS vector."""

    version: str  # "3.0", "3.1" or "4.0"
    vector: str  # normalised vector string, as the library prints it
    base_score: float
    severity: str  # one of SEVERITIES (lower case)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "vector": self.vector,
            "base_score": self.base_score,
            "severity": self.severity,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Score:
        return score_vector(str(doc["vector"]))


def score_vector(vector: str) -> Score:
    """Score a CVSS v3.0, v3.1 or v4.0 base vector; raise CVSSVectorError if malformed."""
    if not isinstance(vector, str) or not vector:
        raise CVSSVectorError("CVSS vector must be a non-empty string")
    if len(vector) > MAX_VECTOR_LENGTH:
        raise CVSSVectorError(
            f"CVSS vector is {len(vector)} characters long, at most {MAX_VECTOR_LENGTH} expected"
        )
    try:
        if vector.startswith(("CVSS:3.0/", "CVSS:3.1/")):
            v3 = CVSS3(vector)
            return Score(
                version=f"3.{v3.minor_version}",
                vector=v3.clean_vector(),
                base_score=float(v3.base_score),
                severity=str(v3.severities()[0]).lower(),
            )
        if vector.startswith("CVSS:4.0/"):
            v4 = CVSS4(vector)
            return Score(
                version="4.0",
                vector=v4.clean_vector(),
                base_score=float(v4.base_score),
                severity=str(v4.severity).lower(),
            )
    except CVSSError as exc:
        raise CVSSVectorError(f"CVSS vector {vector!r} is malformed: {exc}") from exc
    raise CVSSVectorError(
        f"CVSS vector {vector[:40]!r} has an unsupported prefix; "
        "expected 'CVSS:3.1/', 'CVSS:3.0/' or 'CVSS:4.0/'"
    )


def cvss_v3_json(score: Score) -> dict[str, Any]:
    """The FIRST CVSS v3.x JSON object (fields the cvss-v3.1.json schema requires)."""
    if not score.version.startswith("3."):
        raise CVSSVectorError(f"CVSS {score.version} has no CVSS v3 JSON representation")
    doc: dict[str, Any] = CVSS3(score.vector).as_json(minimal=True)
    return doc
