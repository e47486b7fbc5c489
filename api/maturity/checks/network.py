"""Checks on the network metadata the agents extract (signals `net.*`)."""

from __future__ import annotations

from pydantic import Field

from api.maturity.checks.base import (
    Outcome,
    Params,
    check,
    day_fr,
    judged,
    plural,
    source_seen,
    span,
    subjects,
)
from api.maturity.inputs import Inputs

_NAMES = {
    "rdp": "RDP",
    "smb": "SMB",
    "winrm": "WinRM",
    "vnc": "VNC",
    "telnet": "Telnet",
    "hl7": "HL7",
    "dicom": "DICOM",
    "ftp": "FTP",
}
# What one observation of a service is: a connection, but each HL7 message and each DICOM
# association request is a record of its own.
_UNITS = {"hl7": ("message", "messages"), "dicom": ("association", "associations")}


class Window(Params):
    window_days: int = Field(default=30, ge=1, le=366)


class Services(Window):
    services: list[str] = Field(min_length=1)


def _no_sensor(inputs: Inputs, days: int) -> Outcome | None:
    """No network metadata at all in the window: nothing can be said either way (a silent
    sensor never passes a control)."""
    if source_seen(inputs, "network", days) is None:
        return Outcome(None, f"Aucune métadonnée réseau reçue sur {days} jours.")
    return None


def _absent(inputs: Inputs, p: Services, signal: str, what: str) -> Outcome:
    """Pass when no row of `signal` for these services; fail with who and when otherwise."""
    missing = _no_sensor(inputs, p.window_days)
    if missing is not None:
        return missing
    seen = source_seen(inputs, "network", p.window_days)
    rows = inputs.rows(signal, p.window_days, p.services)
    if not rows:
        names = ", ".join(_NAMES.get(s, s) for s in p.services)
        return Outcome(1.0, f"Aucun flux {names} {what} sur {p.window_days} jours.", seen)
    first, last, _ = span(rows)
    parts = []
    for service in p.services:
        mine = [r for r in rows if r.key == service]
        if mine:
            n = sum(r.count for r in mine)
            peers = len(subjects(mine))
            one, many = _UNITS.get(service, ("connexion", "connexions"))
            parts.append(
                f"{plural(n, one, many)} {_NAMES.get(service, service)} "
                f"{what} ({plural(peers, 'adresse publique', 'adresses publiques')})"
            )
    summary = f"{'; '.join(parts)} du {day_fr(first)} au {day_fr(last)}."
    counts = {s: sum(r.count for r in rows if r.key == s) for s in p.services}
    return judged(
        inputs,
        0.0,
        summary[0].upper() + summary[1:],
        seen,
        {k: v for k, v in counts.items() if v},
        rows,
    )


@check("network.exposed_services", Services, reads={"net.exposed": None, "source": None})
def exposed_services(inputs: Inputs, p: Services) -> Outcome:
    """Administration or sharing services reached from Internet addresses: an established
    inbound connection from a public peer (or a Windows remote-desktop logon from one)."""
    return _absent(inputs, p, "net.exposed", "entrantes établies depuis Internet")


@check(
    "network.cleartext_health_public_peer",
    Services,
    reads={"net.health": None, "source": None},
)
def cleartext_health(inputs: Inputs, p: Services) -> Outcome:
    """HL7 over MLLP, or DICOM without TLS, exchanged with an Internet address."""
    return _absent(inputs, p, "net.health", "en clair avec un pair Internet")


class Tls(Window):
    scope: str = Field(pattern="^(exposed|internal)$")


@check("network.weak_tls_servers", Tls, reads={"net.tls": None, "source": None})
def weak_tls(inputs: Inputs, p: Tls) -> Outcome:
    """The share of the establishment's TLS servers (exposed to the Internet, or internal)
    that accepted a version below TLS 1.2."""
    missing = _no_sensor(inputs, p.window_days)
    if missing is not None:
        return missing
    where = "exposés" if p.scope == "exposed" else "internes"
    weak_rows = inputs.rows("net.tls", p.window_days, [f"weak:{p.scope}"])
    ok_rows = inputs.rows("net.tls", p.window_days, [f"ok:{p.scope}"])
    weak, ok = subjects(weak_rows), subjects(ok_rows)
    servers = weak | ok
    if not servers:
        return Outcome(None, f"Aucune poignée de main TLS vers des serveurs {where} observée.")
    share = len(weak) / len(servers)
    first, last, _ = span(weak_rows)
    seen = max(r.last_seen for r in weak_rows + ok_rows)
    if not weak:
        summary = f"{plural(len(servers), 'serveur')} TLS {where}, tous en TLS 1.2 ou plus."
    else:
        shown = ", ".join(sorted(weak)[:3])
        summary = (
            f"{len(weak)} serveur(s) TLS {where} sur {len(servers)} acceptent une version "
            f"inférieure à TLS 1.2 (ex. {shown}), du {day_fr(first)} au {day_fr(last)}."
        )
    return judged(
        inputs,
        1.0 - share,
        summary,
        seen,
        {"servers": len(servers), "weak": len(weak)},
        weak_rows,
    )


@check("network.smbv1", Window, reads={"net.smb": None, "source": None})
def smbv1(inputs: Inputs, p: Window) -> Outcome:
    """The share of SMB servers that spoke SMBv1."""
    missing = _no_sensor(inputs, p.window_days)
    if missing is not None:
        return missing
    v1_rows = inputs.rows("net.smb", p.window_days, ["v1"])
    all_rows = inputs.rows("net.smb", p.window_days)
    v1, servers = subjects(v1_rows), subjects(all_rows)
    if not servers:
        return Outcome(None, "Aucun échange SMB observé.")
    first, last, _ = span(v1_rows)
    seen = max(r.last_seen for r in all_rows)
    if not v1:
        summary = f"{plural(len(servers), 'serveur')} SMB, aucun en SMBv1."
    else:
        shown = ", ".join(sorted(v1)[:3])
        summary = (
            f"{len(v1)} serveur(s) SMB sur {len(servers)} parlent SMBv1 (ex. {shown}), "
            f"du {day_fr(first)} au {day_fr(last)}."
        )
    return judged(
        inputs,
        1.0 - len(v1) / len(servers),
        summary,
        seen,
        {"servers": len(servers), "smbv1": len(v1)},
        v1_rows,
    )


@check("network.cleartext_admin", Services, reads={"net.cleartext": None, "source": None})
def cleartext_admin(inputs: Inputs, p: Services) -> Outcome:
    """Cleartext administration protocols (Telnet, FTP) answered by internal servers."""
    missing = _no_sensor(inputs, p.window_days)
    if missing is not None:
        return missing
    seen = source_seen(inputs, "network", p.window_days)
    rows = inputs.rows("net.cleartext", p.window_days, p.services)
    if not rows:
        names = ", ".join(_NAMES.get(s, s) for s in p.services)
        return Outcome(1.0, f"Aucune session {names} établie sur {p.window_days} jours.", seen)
    first, last, _ = span(rows)
    servers = subjects(rows)
    names = ", ".join(sorted({_NAMES.get(r.key, r.key) for r in rows}))
    n = sum(r.count for r in rows)
    return judged(
        inputs,
        0.0,
        f"{plural(n, 'session')} {names} en clair vers {plural(len(servers), 'serveur')} "
        f"(ex. {', '.join(sorted(servers)[:3])}), du {day_fr(first)} au {day_fr(last)}.",
        seen,
        {"sessions": n, "servers": len(servers)},
        rows,
    )


@check("network.public_dns", Window, reads={"net.dns": None, "source": None})
def public_dns(inputs: Inputs, p: Window) -> Outcome:
    """The share of internal DNS clients, other than the declared resolvers, that asked a
    resolver on the Internet directly."""
    missing = _no_sensor(inputs, p.window_days)
    if missing is not None:
        return missing
    resolvers = set(inputs.profile.resolvers)
    public_rows = inputs.rows("net.dns", p.window_days, ["public"])
    all_rows = inputs.rows("net.dns", p.window_days)
    bypass = subjects(public_rows) - resolvers
    clients = subjects(all_rows) - resolvers
    if not clients:
        return Outcome(None, "Aucune requête DNS de poste interne observée.")
    first, last, _ = span(public_rows)
    seen = max(r.last_seen for r in all_rows)
    if not bypass:
        summary = f"{plural(len(clients), 'client')} DNS, tous via les résolveurs internes."
    else:
        summary = (
            f"{len(bypass)} client(s) DNS sur {len(clients)} interrogent directement un "
            f"résolveur Internet (ex. {', '.join(sorted(bypass)[:3])})."
        )
    return judged(
        inputs,
        1.0 - len(bypass) / len(clients),
        summary,
        seen,
        {"clients": len(clients), "bypass": len(bypass)},
        public_rows,
    )


@check("network.admin_hosts_internet", Window, reads={"net.outbound": None, "source": None})
def admin_hosts_internet(inputs: Inputs, p: Window) -> Outcome:
    """Declared domain controllers and administration servers that reached the Internet."""
    admin = set(inputs.profile.admin_hosts)
    if not admin:
        return Outcome(None, "Aucun serveur d'administration déclaré dans le profil.")
    missing = _no_sensor(inputs, p.window_days)
    if missing is not None:
        return missing
    seen = source_seen(inputs, "network", p.window_days)
    rows = [r for r in inputs.rows("net.outbound", p.window_days) if admin & set(r.subjects)]
    talking = subjects(rows) & admin
    if not talking:
        return Outcome(
            1.0,
            f"Aucun des {len(admin)} serveurs d'administration déclarés n'a joint Internet.",
            seen,
        )
    first, last, _ = span(rows)
    return judged(
        inputs,
        1.0 - len(talking) / len(admin),
        f"{len(talking)} serveur(s) d'administration sur {len(admin)} ont joint Internet "
        f"(ex. {', '.join(sorted(talking)[:3])}), du {day_fr(first)} au {day_fr(last)}.",
        seen,
        {"admin_hosts": len(admin), "reaching_internet": len(talking)},
        rows,
    )
