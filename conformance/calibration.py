"""The probe's calibration table: which cases each flaw profile must fail.

``tests/integration/test_probe_calibration.py`` runs the probe against the
secure device and against every flaw profile and asserts that the observed
FAIL set equals the row below (the mutation score is 100 % only when every
flaw is detected and nothing else fails). ``docs/FLAWS.md`` is rendered from
this table (``python -m conformance.calibration > docs/FLAWS.md``) and a test
checks it is current.
"""

from __future__ import annotations

from .catalogue import load_catalogue

# flaw -> the cases that must FAIL (and no others)
FLAW_CASES: dict[str, frozenset[str]] = {
    "tls-legacy": frozenset({"TLS-01", "TLS-02", "TLS-08"}),
    "weak-ciphers": frozenset({"TLS-02", "TLS-08"}),
    "self-signed-cert": frozenset(),  # refused at preflight, see PREFLIGHT_FLAWS
    "plaintext-http": frozenset({"TLS-05", "ONVIF-06"}),
    "shared-default-password": frozenset({"CRED-01", "CRED-02", "CRED-03", "ONVIF-02"}),
    "no-forced-change": frozenset({"CRED-01", "ONVIF-02"}),
    "no-lockout": frozenset({"CRED-06"}),
    "user-enumeration": frozenset({"CRED-07", "THR-01"}),
    "unsigned-update-accepted": frozenset({"UPD-01", "UPD-02"}),
    "rollback-accepted": frozenset({"UPD-03", "UPD-08"}),
    "boot-skips-signature": frozenset({"BOOT-03"}),
    "update-client-no-tls-validation": frozenset({"UPD-05"}),
    "no-security-txt": frozenset({"DISC-01", "DISC-02"}),
    "expired-security-txt": frozenset({"DISC-01"}),
    "sla-breached": frozenset({"DISC-05"}),
    "onvif-preauth-open": frozenset({"ONVIF-01"}),
    "wsse-replay": frozenset({"ONVIF-03", "ONVIF-04"}),
    "onvif-anonymous-default": frozenset({"ONVIF-01"}),
    "onvif-digest-md5-only": frozenset({"ONVIF-06"}),
    "rtsp-plaintext": frozenset({"RTSP-01"}),
    "rtsp-no-auth": frozenset({"RTSP-02", "RTSP-03", "RTSP-04"}),
    "rtsp-basic-auth": frozenset({"RTSP-03"}),
    "unsigned-stream": frozenset({"RTSP-05"}),
    "session-cookie-insecure": frozenset({"SESS-01"}),
    "session-no-idle-expiry": frozenset({"SESS-05"}),
    "session-survives-logout": frozenset({"SESS-02"}),
    "session-survives-password-change": frozenset({"SESS-03"}),
    "no-csrf-check": frozenset({"SESS-04"}),
    "viewer-can-change-settings": frozenset({"ROLE-01"}),
    "operator-can-manage-users": frozenset({"ROLE-01"}),
    "password-min-off-by-one": frozenset({"PWD-01"}),
    "label-variant-accepted": frozenset({"PWD-02"}),
    "identity-password-accepted": frozenset({"PWD-03"}),
    "throttle-known-names-only": frozenset({"THR-01"}),
    "rollback-same-counter": frozenset({"UPD-08"}),
}

# Why a flaw trips more than its own case.
NOTES: dict[str, str] = {
    "tls-legacy": "TLS 1.0/1.1 have no AEAD suites, so enabling them brings CBC suites, which OpenSSL then also offers under TLS 1.2.",
    "weak-ciphers": "With an ECDSA device key, static RSA key exchange cannot be negotiated; the flaw adds ECDHE-ECDSA CBC suites.",
    "self-signed-cert": "Refused at preflight: the TLS handshake does not validate against --ca, so the probe exits 2 naming the certificate, and writes no report (no verdict can be earned over an unauthenticated channel).",
    "shared-default-password": "The unit's label reads admin/admin, so the initial-password cases fail too.",
    "unsigned-update-accepted": "The flawed client accepts the unsigned and the attacker-signed image; the secure bootloader still refuses them at the next boot (defence in depth).",
    "rollback-accepted": "The flawed client installs the older image; the secure bootloader refuses it by the fused counter at the next boot. With no rollback check at all it also installs the older version that shares the running counter (UPD-08).",
    "boot-skips-signature": "The slot holds firmware signed by an attacker key; only attestation against the vendor's reference values can tell.",
    "no-security-txt": "Without security.txt the disclosure policy cannot be found either.",
    "sla-breached": "A vendor-side flaw (refcam update-server run --flaw sla-breached).",
    "no-forced-change": "The label password opens ONVIF as well as the web API.",
    "plaintext-http": "The plain-HTTP listener serves the whole application, the ONVIF services (and their Digest) included.",
    "wsse-replay": "One switch skips both UsernameToken freshness checks: the reused nonce and the stale Created.",
    "rtsp-no-auth": "With no authentication at all, valid credentials sent as Basic and a replayed Digest response are accepted too.",
    "user-enumeration": "The unknown name is answered 404 before any throttling, so it is also never throttled like the existing one.",
}

# Flaws the preflight refuses before any case runs (one line, exit 2, no report):
# flaw -> what the line says. No verdict can be earned over a channel that does not
# authenticate the unit, and a report of FAILs would not tell a flawed unit from a wrong --ca.
PREFLIGHT_FLAWS: dict[str, str] = {
    "self-signed-cert": "does not validate against --ca",
}

# Kept for callers of the old table: flaws whose runs have no trusted channel.
NEEDS_TRUSTED_CHANNEL_FLAWS = frozenset(PREFLIGHT_FLAWS)


def render_markdown() -> str:
    catalogue = load_catalogue()
    titles = {c.id: c.title for c in catalogue.cases}
    lines = [
        "# Flaw profiles and the probe cases they fail",
        "",
        "Generated by `python -m conformance.calibration` from the calibration table that",
        "`tests/integration/test_probe_calibration.py` proves on every run: the secure",
        "device passes every case, and each flaw fails exactly these cases.",
        "",
        "| flaw | failing cases | note |",
        "|---|---|---|",
    ]
    for flaw, cases in FLAW_CASES.items():
        listed = "<br>".join(f"{c} {titles[c]}" for c in sorted(cases))
        if flaw in PREFLIGHT_FLAWS:
            listed = f"preflight: exit 2, \"{PREFLIGHT_FLAWS[flaw]}\""
        lines.append(f"| `{flaw}` | {listed} | {NOTES.get(flaw, '')} |")
    detected = sum(1 for flaw, cases in FLAW_CASES.items() if cases or flaw in PREFLIGHT_FLAWS)
    lines += ["", f"Mutation score: {detected} of {len(FLAW_CASES)} flaws detected.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
