"""Adversary scenarios against the real protocol and verifier (tracker issue 5)."""
