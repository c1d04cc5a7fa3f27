"""nginx in front of the static TUF repository: the configuration ``docs/UPDATES.md`` shows.

A TUF repository is static files (``metadata/`` and ``targets/``), so at scale any
web server or CDN serves it and ``refcam repo refresh`` runs from cron on the
machine that holds the online keys. :func:`server_block` writes the nginx
``server`` block for it: the device's TLS policy (``common.tls``, Mozilla
intermediate), the same security headers and cache rules as
``update_server.server`` (``timestamp.json`` and ``root.json`` never cached,
versioned metadata and hash-prefixed targets immutable) and nothing served
outside ``metadata/`` and ``targets/``.

The block in ``docs/UPDATES.md`` is this function's output for the values the doc
names (a test keeps them equal), and ``tests/update_server/test_nginx.py`` serves a
real repository with it to the device's own update client.
:func:`standalone_config` wraps the block in a complete ``nginx.conf`` that runs
in the foreground with every file under one prefix (tests and
``benchmarks/vendor_load.py``).

Written for Debian 12's nginx 1.22 (``listen ... ssl http2``; the separate
``http2 on;`` directive needs nginx 1.25.1).

Example::

    print(server_block(listen="443", server_name="updates.example.com",
                       certificate="/etc/refcam/update-server.pem",
                       certificate_key="/etc/refcam/update-server.key.pem",
                       root="/srv/refcam/REPO"))
"""

from __future__ import annotations

from common.tls import GROUPS, INTERMEDIATE_TLS12_CIPHERS

HSTS = 'add_header Strict-Transport-Security "max-age=31536000" always;'
NOSNIFF = "add_header X-Content-Type-Options nosniff always;"
IMMUTABLE = 'add_header Cache-Control "public, max-age=31536000, immutable" always;'
NO_CACHE = 'add_header Cache-Control "no-cache" always;'
# OpenSSL's curve names, in the order of common.tls.GROUPS.
_NGINX_CURVES = {"X25519": "X25519", "P-256": "prime256v1", "P-384": "secp384r1"}


def _check(name: str, value: str) -> str:
    """Refuse a value that would end or extend an nginx directive."""
    if not value or any(c in ';{}"\'#\\$' or c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{name} cannot go into an nginx configuration: {value!r}")
    return value


def server_block(*, listen: str, server_name: str, certificate: str, certificate_key: str, root: str) -> str:
    """The nginx ``server`` block that serves the repository at ``root`` over TLS."""
    listen, server_name = _check("listen", listen), _check("server_name", server_name)
    certificate, certificate_key = _check("certificate", certificate), _check("certificate_key", certificate_key)
    root = _check("root", root)
    curves = ":".join(_NGINX_CURVES[g] for g in GROUPS.split(":"))
    # add_header in a location replaces the server-level ones, hence the repetition.
    return f"""server {{
    listen {listen} ssl http2;
    server_name {server_name};

    # Mozilla intermediate (same policy as common.tls.server_context)
    ssl_certificate     {certificate};      # leaf + vendor root
    ssl_certificate_key {certificate_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve {curves};
    ssl_ciphers {INTERMEDIATE_TLS12_CIPHERS};
    ssl_prefer_server_ciphers off;
    ssl_session_tickets off;

    {HSTS}
    {NOSNIFF}

    root {root};          # only metadata/ and targets/ are exposed below
    location = /repo.json {{ return 404; }}
    location ~ /\\. {{ return 404; }}

    # The freshness signal: never served from a stale cache.
    location = /metadata/timestamp.json {{
        default_type application/json;
        {NO_CACHE}
        {HSTS}
        {NOSNIFF}
    }}
    location = /metadata/root.json {{
        default_type application/json;
        {NO_CACHE}
        {HSTS}
        {NOSNIFF}
    }}
    # Versioned metadata and hash-prefixed targets never change once written.
    location /metadata/ {{
        default_type application/json;
        {IMMUTABLE}
        {HSTS}
        {NOSNIFF}
    }}
    location /targets/ {{
        default_type application/octet-stream;
        {IMMUTABLE}
        {HSTS}
        {NOSNIFF}
        # Range requests (resumable downloads) are on by default for static files.
    }}
    location / {{ return 404; }}
}}
"""


def standalone_config(block: str, *, prefix: str, workers: int = 1, user: str | None = None) -> str:
    """A whole ``nginx.conf`` around ``block``: foreground, pid, logs and temp files under ``prefix``.

    ``user`` is needed only when nginx starts as root (its workers then drop to it).
    """
    prefix = _check("prefix", prefix)
    user_line = f"user {_check('user', user)};\n" if user else ""
    return f"""{user_line}worker_processes {int(workers)};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ application/json json; application/octet-stream img; }}
{block}}}
"""
