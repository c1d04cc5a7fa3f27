"""refcam: a reference secure network-camera firmware simulator.

The distribution holds four packages that mirror a real product:
``bootloader`` (image format, simulated hardware, boot chain, measured boot),
``device`` (the firmware runtime that the boot chain loads from a verified
image), ``update_server`` (the vendor side) and ``conformance`` (the
black-box probe). This package only holds the ``refcam`` command.
"""

__version__ = "0.1.0"
