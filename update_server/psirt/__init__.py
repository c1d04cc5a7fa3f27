"""Product security incident response: reports, their workflow, SLA clocks.

``model`` holds the pure report state machine, ``sla`` the pure deadline
engine, ``policy`` the SLA policy as data (``default_sla.toml``), ``store``
the durable SQLite adapter and ``web`` the aiohttp routes (intake, PSIRT API,
security.txt, CSAF provider directory).
"""
