"""geoattest: landmark-timed, speed-of-light-bounded chip location attestation."""

__version__ = "0.1.0"
