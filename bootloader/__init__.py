"""The boot side of refcam: image format, keys, simulated hardware, ROM and
bootloader stages, measured boot and attestation evidence.

Nothing here imports :mod:`device`; the firmware runtime is loaded only from
the verified bytes of a booted image (see :mod:`bootloader.firmware`).
"""
