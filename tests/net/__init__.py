"""Networking tests against real peers on loopback."""
