"""The black-box conformance probe: a test catalogue mapped to KS X 3020,
EN 303 645, CLS and NIST IR 8259A, run over the network against any camera."""
