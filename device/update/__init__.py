"""Secure updates on the device: TUF client, fetcher, install flow and routes.

``client.build_updater`` is the one python-tuf ``Updater`` construction (also
used by ``refcam tuf-client``); ``client.UpdateClient`` checks, downloads,
verifies and installs into the inactive slot; ``fetcher.HTTPSFetcher`` is the
network I/O (vendor TLS root, host name, size limits, resumable targets);
``web.add_update_routes`` / ``web.update_extension`` mount the admin API.

Example::

    client = UpdateClient(handoff, UpdateClientConfig(repository_url=url),
                          fetcher=fetcher, clock=time.time)
    if client.check().candidate:
        client.install()   # then reboot into the trial image
"""
