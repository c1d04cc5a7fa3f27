"""The ground package: code that the bootloader, the firmware runtime and the
vendor side share, and that imports nothing else of refcam.

It is packed into every firmware payload beside ``device/`` (and so signed
and measured with it), and the bootloader stage's copy is measured by the ROM
with the rest of the bootloader. It holds the root error and the boot errors,
the MCUboot image format and key manifest, firmware verification, the boot
hand-off interface, password hashing and policy, durable file writes, the
SQLite open helper, security.txt rendering and the flaw-profile switches.
"""
