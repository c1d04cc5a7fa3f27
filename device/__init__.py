"""The camera firmware runtime.

This package is what a firmware image carries: ``refcam firmware build`` packs
it into the signed image and the boot chain imports it from the verified bytes
(``bootloader.firmware``), possibly under another module name, so modules in
here import each other only with relative imports. ``main.run(handoff, argv)``
is the entry point.
"""
