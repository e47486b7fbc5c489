"""Where Sigma log sources live in Windows event logs, from the Sigma taxonomy appendix.

One table serves twice: the engine uses it to send a Windows event (channel, EventID) only
to the rules that can apply to it, and the SQLite conversion adds the same conditions to
each query, so both select the same events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sigma.pipelines.common import windows_logsource_mapping

SYSMON = "Microsoft-Windows-Sysmon/Operational"
POWERSHELL = ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational")
POWERSHELL_CLASSIC = "Windows PowerShell"

# Sigma taxonomy appendix: Sysmon event IDs per category.
_SYSMON_CATEGORIES: dict[str, tuple[int, ...]] = {
    "process_creation": (1,),
    "file_change": (2,),
    "network_connection": (3,),
    "sysmon_status": (4, 16),
    "process_termination": (5,),
    "driver_load": (6,),
    "image_load": (7,),
    "create_remote_thread": (8,),
    "raw_access_thread": (9,),
    "process_access": (10,),
    "file_event": (11,),
    "registry_event": (12, 13, 14),
    "registry_add": (12,),
    "registry_delete": (12,),
    "registry_set": (13,),
    "registry_rename": (14,),
    "create_stream_hash": (15,),
    "pipe_created": (17, 18),
    "wmi_event": (19, 20, 21),
    "dns_query": (22,),
    "file_delete": (23, 26),
    "clipboard_capture": (24,),
    "process_tampering": (25,),
    "file_delete_detected": (26,),
    "file_block_executable": (27,),
    "file_block_shredding": (28,),
    "file_executable_detected": (29,),
    "sysmon_error": (255,),
}
_POWERSHELL_CATEGORIES: dict[str, tuple[tuple[str, ...], int]] = {
    "ps_module": (POWERSHELL, 4103),
    "ps_script": (POWERSHELL, 4104),
    "ps_classic_start": ((POWERSHELL_CLASSIC,), 400),
    "ps_classic_provider_start": ((POWERSHELL_CLASSIC,), 600),
    "ps_classic_script": ((POWERSHELL_CLASSIC,), 800),
}
# Services SigmaHQ uses that pySigma's common mapping does not list.
_EXTRA_SERVICES: dict[str, tuple[str, ...]] = {
    "iis-configuration": ("Microsoft-IIS-Configuration/Operational",),
    "smbserver-connectivity": ("Microsoft-Windows-SmbServer/Connectivity",),
    "ldap": ("Microsoft-Windows-LDAP-Client/Debug",),
}


def _service_channels() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {"sysmon": (SYSMON,)}
    for service, channels in windows_logsource_mapping.items():
        out[service] = (channels,) if isinstance(channels, str) else tuple(channels)
    out.update(_EXTRA_SERVICES)
    return out


SERVICE_CHANNELS: Mapping[str, tuple[str, ...]] = _service_channels()


@dataclass(frozen=True, slots=True)
class WindowsWhere:
    """Events of these channels (and, if given, these EventIDs)."""

    channels: tuple[str, ...]
    event_ids: tuple[int, ...] = ()


def windows_where(category: str | None, service: str | None) -> list[WindowsWhere] | None:
    """Where a Windows rule's events come from.

    None: anywhere (the rule names neither category nor service). An empty list: nowhere
    this table knows (an unknown service or an ETW-only category such as `file_access`).
    """
    places: list[WindowsWhere] | None = None
    if category:
        if category in _SYSMON_CATEGORIES:
            places = [WindowsWhere((SYSMON,), _SYSMON_CATEGORIES[category])]
            if category == "process_creation":
                # Security auditing of process creation (4688), named as Sysmon's by the event
                # view, so that hospitals without Sysmon are covered too.
                places.append(WindowsWhere(("Security",), (4688,)))
        elif category in _POWERSHELL_CATEGORIES:
            channels, event_id = _POWERSHELL_CATEGORIES[category]
            places = [WindowsWhere(channels, (event_id,))]
        else:
            places = []
    if service:
        channels = SERVICE_CHANNELS.get(service, ())
        if places is None:
            places = [WindowsWhere(channels)]
        else:  # both given: the category's events, restricted to the service's channels
            places = [
                WindowsWhere(tuple(c for c in p.channels if c in channels), p.event_ids)
                for p in places
            ]
            places = [p for p in places if p.channels]
    return places


def windows_applies(
    places: list[WindowsWhere] | None, channel: str | None, event_id: int | None
) -> bool:
    if places is None:
        return True
    return any(
        channel in p.channels and (not p.event_ids or event_id in p.event_ids) for p in places
    )
