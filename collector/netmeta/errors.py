"""Errors of network metadata extraction.

VigieNetmetaError
└── CaptureFormatError   a file is not a pcap/pcapng capture at all (damage inside one is counted)
"""

from __future__ import annotations


class VigieNetmetaError(Exception):
    """Root of the errors raised by collector.netmeta."""


class CaptureFormatError(VigieNetmetaError):
    """A file that is not a capture, or whose file header is unreadable."""
