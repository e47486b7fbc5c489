"""Checks on Windows events (signals `win.*`)."""

from __future__ import annotations

from datetime import date
from fnmatch import fnmatch

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
from api.maturity.inputs import Inputs, Row


class Window(Params):
    window_days: int = Field(default=30, ge=1, le=366)


def _no_logs(inputs: Inputs, days: int) -> Outcome | None:
    if source_seen(inputs, "windows", days) is None:
        return Outcome(None, f"Aucun journal Windows reçu sur {days} jours.")
    return None


def _host_share(
    inputs: Inputs,
    bad_rows: list[Row],
    all_rows: list[Row],
    *,
    none: str,
    bad: str,
    hosts: set[str] | None = None,
) -> Outcome:
    """1 − the share of hosts seen in `all_rows` that appear in `bad_rows`."""
    everyone = subjects(all_rows) if hosts is None else hosts
    culprits = subjects(bad_rows) & everyone
    if not everyone:
        return Outcome(None, none)
    first, last, _ = span(bad_rows)
    seen = max((r.last_seen for r in all_rows), default=None)
    counts = {"hosts": len(everyone), "failing": len(culprits)}
    if not culprits:
        return Outcome(
            1.0, f"{plural(len(everyone), 'poste')} observé(s) : aucun {bad}.", seen, counts
        )
    shown = ", ".join(sorted(culprits)[:3])
    return judged(
        inputs,
        1.0 - len(culprits) / len(everyone),
        f"{len(culprits)} machine(s) sur {len(everyone)} : {bad} (ex. {shown}), "
        f"du {day_fr(first)} au {day_fr(last)}.",
        seen,
        counts,
        bad_rows,
    )


@check("windows.ntlmv1", Window, reads={"win.logon": None, "source": None})
def ntlmv1(inputs: Inputs, p: Window) -> Outcome:
    """The share of hosts accepting NTLMv1 or LM logons (4624 LmPackageName)."""
    missing = _no_logs(inputs, p.window_days)
    if missing is not None:
        return missing
    return _host_share(
        inputs,
        inputs.rows("win.logon", p.window_days, ["ntlmv1"]),
        inputs.rows("win.logon", p.window_days),
        none="Aucune ouverture de session (4624) reçue.",
        bad="ouverture de session NTLMv1 ou LM",
    )


@check(
    "windows.builtin_admin",
    Window,
    reads={"win.builtin": None, "win.logon": None, "source": None},
)
def builtin_admin(inputs: Inputs, p: Window) -> Outcome:
    """The share of hosts where the built-in Administrator account (RID 500) logged on."""
    missing = _no_logs(inputs, p.window_days)
    if missing is not None:
        return missing
    return _host_share(
        inputs,
        inputs.rows("win.builtin", p.window_days),
        inputs.rows("win.logon", p.window_days),
        none="Aucune ouverture de session (4624) reçue.",
        bad="session du compte Administrateur intégré",
    )


@check(
    "windows.privileged_on_workstations",
    Window,
    reads={"win.privileged": None, "win.logon": None, "source": None},
)
def privileged_on_workstations(inputs: Inputs, p: Window) -> Outcome:
    """The share of workstations (hosts not declared as servers) where a person's account
    received administrative privileges (4672)."""
    servers = inputs.profile.server_hosts
    if not servers:
        return Outcome(None, "Le profil ne déclare pas les serveurs : postes non distingués.")
    missing = _no_logs(inputs, p.window_days)
    if missing is not None:
        return missing

    def workstation(host: str) -> bool:
        return not any(fnmatch(host.lower(), pattern.lower()) for pattern in servers)

    logons = inputs.rows("win.logon", p.window_days)
    stations = {h for h in subjects(logons) if workstation(h)}
    return _host_share(
        inputs,
        inputs.rows("win.privileged", p.window_days),
        logons,
        none="Aucune ouverture de session de poste de travail reçue.",
        bad="privilèges d'administration accordés sur un poste de travail",
        hosts=stations,
    )


class EndOfSupport(Window):
    # Windows build number -> the last day of support of the products sharing it (when a
    # client and a server share a build, the earlier date: the host may be either).
    builds: dict[str, date] = Field(min_length=1)


# Hosts boot rarely, so builds are looked for over a long window; but logs must still be
# arriving now (a month, as elsewhere): reading three months of `source` rows for that alone
# was a third of a year-old establishment's snapshot.
LOGS_ARRIVING_DAYS = 30


@check(
    "windows.end_of_support",
    EndOfSupport,
    reads={"win.os": None, "source": LOGS_ARRIVING_DAYS},
)
def end_of_support(inputs: Inputs, p: EndOfSupport) -> Outcome:
    """The share of hosts that booted (System 6009) a Windows build past its end of support,
    when Windows logs arrived in the last 30 days."""
    missing = _no_logs(inputs, LOGS_ARRIVING_DAYS)
    if missing is not None:
        return missing
    rows = inputs.rows("win.os", p.window_days)
    # A host's latest build counts: an upgraded host is judged by what it runs now.
    latest: dict[str, tuple[object, str]] = {}
    for r in sorted(rows, key=lambda r: r.last_seen):
        for host in r.subjects:
            latest[host] = (r.last_seen, r.key)
    if not latest:
        return Outcome(None, "Aucun démarrage Windows (événement 6009) reçu : versions inconnues.")
    ended = {
        h
        for h, (_, build) in latest.items()
        if build in p.builds and p.builds[build] < inputs.as_of
    }
    bad_rows = [r for r in rows if r.key in p.builds and p.builds[r.key] < inputs.as_of]
    seen = max(r.last_seen for r in rows)
    counts = {"hosts": len(latest), "end_of_support": len(ended)}
    if not ended:
        return Outcome(
            1.0,
            f"{plural(len(latest), 'machine')} : aucune version Windows hors support.",
            seen,
            counts,
        )
    builds = ", ".join(sorted({latest[h][1] for h in ended}))
    return judged(
        inputs,
        1.0 - len(ended) / len(latest),
        f"{len(ended)} machine(s) sur {len(latest)} démarrent une version de Windows hors "
        f"support (build {builds} ; ex. {', '.join(sorted(ended)[:3])}).",
        seen,
        counts,
        bad_rows,
    )


@check("windows.antivirus", Window, reads={"win.av": None, "win.logon": None, "source": None})
def antivirus(inputs: Inputs, p: Window) -> Outcome:
    """The share of hosts whose Defender reported real-time protection off or a failed
    signature update."""
    missing = _no_logs(inputs, p.window_days)
    if missing is not None:
        return missing
    av = inputs.rows("win.av", p.window_days)
    logons = inputs.rows("win.logon", p.window_days)
    if not av:
        return Outcome(None, "Aucun événement de l'antivirus Defender reçu.")
    return _host_share(
        inputs,
        [r for r in av if r.key in ("rtp_off", "update_failed")],
        av + logons,
        none="Aucun événement de l'antivirus Defender reçu.",
        bad="protection temps réel coupée ou mise à jour des signatures en échec",
    )
