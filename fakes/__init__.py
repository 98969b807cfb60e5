"""Peers made for tests and benchmarks: HTTP servers that misbehave on purpose (faultserver),
an S3 endpoint on loopback (s3server), and API bodies built field by field (payloads).

They are edges only: the pipeline never imports them, and they never stand in for volcap's own
code.
"""
