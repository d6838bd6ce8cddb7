"""The local demo: a verifier, landmarks, an emulated Internet and a fleet of chips."""
