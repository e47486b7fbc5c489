"""The maturity report as a PDF (A4, French): cover, summary with the 12-month trend, scores
by domain, top fixes, every control, exceptions and "not applicable" declarations,
contradictions, and the method annex. Layout only: the contents come from
`maturity.gather`, the two charts are drawn once each."""

from __future__ import annotations

from datetime import timedelta

from api.reports import charts, french
from api.reports.maturity import (
    BASIS_FR,
    EFFORT_FR,
    EVIDENCE_FR,
    EXCEPTION_FR,
    STATE_FR,
    STATUS_FR,
    TOP_FIXES,
    TREND_DAYS,
    Contents,
    percentile_said,
    sides,
)
from api.reports.pdf import ACCENT, BAD, FAMILY, FILL, GOOD, INK, MARGIN, MUTED, WARN, Document

EXPLANATION_MAX = 420  # characters of a control's explanation in the PDF (the XLSX has all)
STATUS_COLOUR = {"pass": GOOD, "partial": WARN, "fail": BAD, "no_evidence": BAD, "stale": BAD}


def render(c: Contents) -> bytes:
    local = french.utc(c.as_of).astimezone(french.PARIS)
    doc = Document(
        title=f"Rapport de maturité cyber · {c.name} ({c.finess})",
        running=f"Rapport de maturité · {c.name} · FINESS {c.finess} · "
        f"situation au {french.long_day(local.date())}",
        as_of=c.as_of,
    )
    _cover(doc, c)
    _summary(doc, c)
    _domains(doc, c)
    _fixes(doc, c)
    _controls(doc, c)
    _declarations(doc, c)
    _method(doc, c)
    return doc.rendered()


def _level(c: Contents) -> str:
    r = c.read
    return f"{r.level} / 5 · {r.level_name}" if r.level_name else f"{r.level} / 5"


def _cover(doc: Document, c: Contents) -> None:
    r = c.read
    local = french.utc(c.as_of).astimezone(french.PARIS)
    doc.add_page()
    doc.start_section("Couverture")
    doc.set_font(FAMILY, "B", 11)
    doc.set_text_color(*ACCENT)
    doc.cell(doc.epw, 6, "VIGIE", new_x="LMARGIN", new_y="NEXT")
    doc.set_font(FAMILY, "", 9)
    doc.set_text_color(*MUTED)
    doc.cell(doc.epw, 5, "Cybersurveillance des établissements de santé",
             new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    doc.ln(24)
    doc.set_text_color(*INK)
    doc.set_font(FAMILY, "B", 24)
    doc.multi_cell(doc.epw, 11, "Rapport de maturité cyber", new_x="LMARGIN", new_y="NEXT")
    doc.ln(2)
    doc.set_font(FAMILY, "", 15)
    doc.multi_cell(doc.epw, 7.5, c.name, new_x="LMARGIN", new_y="NEXT")
    doc.set_font(FAMILY, "", 11)
    doc.set_text_color(*MUTED)
    doc.multi_cell(doc.epw, 6, f"Situation au {french.long_day(local.date())}",
                   new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    doc.set_text_color(*INK)
    doc.ln(10)
    # The headline in a band: score and level.
    top = doc.get_y()
    doc.set_fill_color(*FILL)
    doc.rect(MARGIN, top, doc.epw, 26, style="F")
    doc.set_fill_color(255)  # tables take the current fill for their cells
    half = doc.epw / 2
    for i, (label, value) in enumerate(
        (("Score global", f"{french.number(r.score, 1)} / 100"), ("Niveau", _level(c)))
    ):
        doc.set_xy(MARGIN + 6 + i * half, top + 4)
        doc.set_font(FAMILY, "", 9)
        doc.set_text_color(*MUTED)
        doc.cell(half - 8, 5, label)
        doc.set_xy(MARGIN + 6 + i * half, top + 10)
        doc.set_font(FAMILY, "B", 17)
        doc.set_text_color(*ACCENT)
        doc.cell(half - 8, 10, value)
    doc.set_text_color(*INK)
    doc.set_y(top + 32)
    doc.facts(
        [
            ("FINESS", c.finess),
            ("Établissement", c.name),
            ("Catégorie", c.kind_fr),
            ("Région", c.region),
            (
                "Situation au",
                f"{french.long_day(local.date())}, {french.moment(c.as_of)[-5:]} (heure de Paris)",
            ),  # fmt: skip
            (
                "Instantané utilisé",
                f"du {french.day(r.as_of)}, calculé le {french.moment(r.computed_at)}",
            ),  # fmt: skip
            ("Référentiel", f"{r.framework.id} version {r.framework.version}"),
            ("Empreinte SHA-256 du référentiel", _digest(r.framework.digest)),
        ]
    )
    doc.set_y(max(doc.get_y(), doc.h - 58))
    doc.paragraph(
        "Ce rapport dit ce que Vigie savait à la date indiquée : le dernier score calculé à "
        "cette date, les déclarations faites jusque-là. Produit à nouveau avec la même date, "
        "il est identique octet pour octet ; le service inscrit son empreinte SHA-256 au "
        "journal d'audit à chaque téléchargement. Le détail de chaque mesure est aussi dans le "
        "classeur XLSX qui l'accompagne.",
        size=8,
        muted=True,
    )


def _summary(doc: Document, c: Contents) -> None:
    r = c.read
    doc.section("1. Synthèse")
    doc.facts(
        [
            ("Score global", f"{french.number(r.score, 1)} / 100"),
            ("Niveau", _level(c)),
            ("Parmi les comparables", percentile_said(r)),
            (
                "Couverture",
                f"{french.percent(r.coverage)} du poids des mesures applicables a "
                "une preuve à jour",
            ),  # fmt: skip
            (
                "Preuves",
                f"{french.percent(r.proof_ratio)} du poids est observé par Vigie ou "
                "vérifié par le CERT ; le reste est déclaré",
            ),  # fmt: skip
            ("Mesures", _counts(c)),
        ]
    )
    doc.subheading("Évolution sur 12 mois")
    day = r.as_of
    start = day - timedelta(days=TREND_DAYS)
    points = [(p.day, p.score) for p in c.history]
    image = charts.score_line(points, start=start, end=day, width_mm=doc.epw, height_mm=52)
    doc.figure(image, width=doc.epw, height=52)
    doc.paragraph(_trend_said(c))
    months = _monthly(c)
    if len(months) > 1:
        doc.grid(
            ["Mois", *[label for label, _, _ in months]],
            [
                ["Score", *[french.number(score, 1) for _, score, _ in months]],
                ["Niveau", *[str(level) for _, _, level in months]],
            ],
            widths=[14, *[(doc.epw - 14) / len(months)] * len(months)],
            align=["LEFT", *["RIGHT"] * len(months)],
            size=7,
        )
        doc.paragraph("Le dernier score calculé de chaque mois.", size=7.5, muted=True)


def _counts(c: Contents) -> str:
    by: dict[str, int] = {}
    for x in c.read.controls:
        by[x.status] = by.get(x.status, 0) + 1
    order = ["pass", "partial", "fail", "no_evidence", "stale", "risk_accepted", "compensated",
             "na"]  # fmt: skip
    said = " · ".join(f"{STATUS_FR[s]} {by[s]}" for s in order if by.get(s))
    return f"{len(c.read.controls)} : {said}"


def _trend_said(c: Contents) -> str:
    if len(c.history) < 2:
        return (
            "Un seul score sur la période : l'évolution se lira aux prochains calculs "
            "(un par jour)."
        )
    first, last = c.history[0], c.history[-1]
    change = last.score - first.score
    sign = "+" if change > 0 else ""
    low = min(c.history, key=lambda p: (p.score, p.day))
    high = max(c.history, key=lambda p: (p.score, p.day))
    if all(p.level == first.level for p in c.history):
        levels = f"niveau {first.level} sur toute la période"
    else:
        levels = f"niveau {first.level} au début, {last.level} à la fin"
    return (
        f"Du {french.day(first.day)} au {french.day(last.day)} ({len(c.history)} jours "
        f"calculés) : de {french.number(first.score, 1)} à {french.number(last.score, 1)}, "
        f"soit {sign}{french.number(change, 1)} points ; {levels}. "
        f"Plus bas {french.number(low.score, 1)} le {french.day(low.day)}, plus "
        f"haut {french.number(high.score, 1)} le {french.day(high.day)}."
    )


def _monthly(c: Contents) -> list[tuple[str, float, int]]:
    """The last point of each month, oldest first (13 at most: a year and its month)."""
    last: dict[tuple[int, int], tuple[float, int]] = {}
    for p in c.history:
        last[(p.day.year, p.day.month)] = (p.score, p.level)
    months = sorted(last)[-13:]
    return [(f"{charts.MONTHS_SHORT[m - 1]}\n{y}", *last[(y, m)]) for y, m in months]


def _domains(doc: Document, c: Contents) -> None:
    r = c.read
    doc.section("2. Scores par domaine")
    doc.paragraph(
        "Score de chaque domaine sur 100, moyenne pondérée de ses mesures applicables ; le "
        "poids dit sa part dans le score global."
    )
    bars = [(d.title, d.score) for d in r.domains]
    height = 10 + 9 * len(bars)
    doc.figure(charts.domain_bars(bars, width_mm=doc.epw, height_mm=height),
               width=doc.epw, height=height)  # fmt: skip
    care = {d.id: d.care for d in c.framework.domains}
    rows = []
    for d in r.domains:
        mine = [x for x in r.controls if x.domain == d.id and x.status != "na"]
        rows.append(
            [
                f"{d.title} ({d.id})",
                care.get(d.id, french.NONE),
                french.number(d.weight),
                french.number(d.score, 1),
                str(len(mine)),
                str(sum(x.status == "pass" for x in mine)),
                str(sum(x.status in ("fail", "no_evidence", "stale") for x in mine)),
            ]
        )
    doc.grid(
        ["Domaine", "CaRE", "Poids", "Score", "Mesures", "Conformes", "Non remplies"],
        rows,
        widths=[58, 24, 14, 16, 18, 22, 22],
        align=["LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"],
    )
    doc.paragraph(
        "Mesures : celles qui s'appliquent à l'établissement. Non remplies : non conformes, "
        "sans preuve ou à la preuve périmée.",
        size=7.5,
        muted=True,
    )


def _fixes(doc: Document, c: Contents) -> None:
    r = c.read
    fixes = r.fixes[:TOP_FIXES]
    doc.section(f"3. Les {len(fixes)} corrections les plus utiles" if fixes else "3. Corrections")
    if not fixes:
        doc.paragraph("Aucune correction : toutes les mesures applicables sont remplies.")
        return
    doc.paragraph(
        "Ce que rapporterait chaque mesure remplie entièrement, en points de score global : "
        "d'abord celles qui font passer au niveau suivant, puis le gain par unité d'effort."
        + (
            f" La liste complète ({len(r.fixes)}) est dans le classeur XLSX."
            if len(r.fixes) > len(fixes)
            else ""
        )  # fmt: skip
    )
    rows = []
    for rank, f in enumerate(fixes, 1):
        rows.append(
            [
                str(rank),
                (f.control, INK),
                c.title_of(f.control),
                f"+{french.number(f.gain, 2)}",
                f"niveau {f.unlocks_level}" if f.unlocks_level else french.NONE,
                EFFORT_FR.get(f.effort, str(f.effort)),
                f.remediation,
            ]
        )
    doc.grid(
        ["N°", "Mesure", "Intitulé", "Gain", "Débloque", "Effort", "Que faire"],
        rows,
        widths=[8, 18, 42, 14, 19, 15, 58],
        align=["RIGHT", "LEFT", "LEFT", "RIGHT", "LEFT", "LEFT", "LEFT"],
    )


def _controls(doc: Document, c: Contents) -> None:
    r = c.read
    doc.section("4. Toutes les mesures")
    doc.paragraph(
        f"Les {len(r.controls)} mesures du référentiel {r.framework.id} {r.framework.version}, "
        "dans son ordre : statut, score (0 à 100 %), d'où vient la preuve, et ce qui a été vu "
        "ou déclaré. Les liens vers les enregistrements sont dans le classeur XLSX."
    )
    rows = []
    for x in r.controls:
        detail = f"{x.domain} · niveau {x.level}"
        if x.critical:
            detail += " · critique"
        basis = BASIS_FR.get(x.basis, x.basis) if x.basis else ""
        explanation = _unprefixed(x.explanation, x.status)
        if len(explanation) > EXPLANATION_MAX:
            explanation = explanation[: EXPLANATION_MAX - 1].rstrip() + "…"
        proofs = [e["proof_sha256"] for e in x.evidence if e.get("proof_sha256")]
        if proofs:
            explanation += f"\nPreuve jointe : SHA-256 {proofs[0][:16]}…"
        rows.append(
            [
                (x.id, INK),
                f"{x.title}\n{detail}",
                (STATUS_FR.get(x.status, x.status), STATUS_COLOUR.get(x.status, MUTED)),
                french.percent(x.score),
                EVIDENCE_FR.get(x.evidence_kind, x.evidence_kind) + (f"\n{basis}" if basis else ""),
                explanation,
            ]
        )
    doc.grid(
        ["Mesure", "Intitulé", "Statut", "Score", "Preuve", "Constat"],
        rows,
        widths=[17, 44, 20, 12, 24, 57],
        align=["LEFT", "LEFT", "LEFT", "RIGHT", "LEFT", "LEFT"],
        size=7.5,
    )


def _quoted(text: str) -> str:
    """« text », with the no-break spaces French puts inside the quotation marks."""
    return f"«\u00a0{text}\u00a0»"


def _digest(hex_digest: str) -> str:
    """A SHA-256 on two lines of 32 digits (a 64-digit word would be cut anywhere)."""
    return f"{hex_digest[:32]}\n{hex_digest[32:]}"


def _unprefixed(explanation: str, status: str) -> str:
    """The explanation without the status it starts with (the table has a column for it)."""
    label = STATUS_FR.get(status, "")
    prefix = f"{label[:1].upper()}{label[1:]} : "
    if not label or not explanation.startswith(prefix):
        return explanation
    rest = explanation[len(prefix) :]
    return rest[:1].upper() + rest[1:]


def _declarations(doc: Document, c: Contents) -> None:
    doc.section("5. Exceptions et mesures non applicables")
    doc.paragraph(
        "Une exception accepte le risque d'une mesure non remplie, ou la remplace par une "
        "mesure compensatoire, jusqu'à une date ; elle est signée par un responsable de "
        "l'établissement. Sont listées celles déclarées jusqu'à la date du rapport, dans "
        "l'état où elles étaient alors."
    )
    if c.exceptions:
        doc.grid(
            ["Mesure", "Type", "Motif", "Approuvée par", "Déclarée", "Échéance et état"],
            [
                [
                    (x.control, INK),
                    EXCEPTION_FR.get(x.kind, x.kind),
                    x.reason,
                    x.approver,
                    f"par {x.created_by}\nle {french.moment(x.created_at)}",
                    f"{french.day(x.expires_at)}\n{STATE_FR[x.state]}"
                    + (
                        f" le {french.moment(x.revoked_at)} par {x.revoked_by}"
                        if x.revoked_at
                        else ""
                    ),
                ]
                for x in c.exceptions
            ],
            widths=[17, 25, 48, 25, 29, 30],
            align=["LEFT"] * 6,
            size=7.5,
        )
    else:
        doc.paragraph("Aucune exception déclarée.", muted=True)
    doc.subheading("Mesures non applicables")
    na = c.not_applicable()
    p = c.profile
    if p is not None:
        doc.paragraph(
            f"Le profil de l'établissement dit ce qui s'applique à lui. Celui en vigueur a été "
            f"déclaré par {p.declared_by} le {french.moment(p.declared_at)} : "
            f"{_quoted(p.reason)}."
        )
    if na:
        doc.grid(
            ["Mesure", "Intitulé", "Motif"],
            [[(x.id, INK), x.title, _unprefixed(x.explanation, x.status)] for x in na],
            widths=[17, 70, 87],
            align=["LEFT"] * 3,
        )
    else:
        doc.paragraph("Aucune mesure déclarée non applicable.", muted=True)
    doc.section("6. Contradictions entre déclaré et observé", new_page=False)
    found = c.contradictions()
    doc.paragraph(
        "Une mesure est à la fois observée par Vigie et déclarée par l'établissement ; quand "
        "les deux s'écartent d'au moins la moitié du score, l'observation compte et l'écart "
        "est signalé ici."
    )
    if found:
        rows = []
        for x in found:
            declared, seen = sides(x)
            rows.append([(x.id, INK), x.title, declared, seen, french.percent(x.score)])
        doc.grid(
            ["Mesure", "Intitulé", "Déclaré", "Observé par Vigie", "Score retenu"],
            rows,
            widths=[17, 40, 48, 51, 18],
            align=["LEFT", "LEFT", "LEFT", "LEFT", "RIGHT"],
        )
    else:
        doc.paragraph("Aucune contradiction.", muted=True)


def _method(doc: Document, c: Contents) -> None:
    r = c.read
    f = c.framework
    doc.section("Annexe : méthode")
    doc.subheading("Score d'une mesure")
    doc.bullets(
        size=8.5,
        items=[
            "Chaque mesure reçoit un score de 0 à 1. Preuve automatique : le résultat du "
            "contrôle fait par Vigie sur ce qu'il observe, avec un crédit partiel selon la part "
            "du parc concernée.",
            "Réponse au questionnaire : non 0, partiellement 1/3, largement 2/3, oui 1, je ne "
            "sais pas 0 ; une date compte 1 si elle est plus récente que l'âge demandé ; un "
            "nombre compte sa part de la cible, au plus 1. Pour une mesure à la fois observée "
            "et déclarée, l'observation l'emporte quand elle existe.",
            "Sans preuve, ou sur une preuve plus ancienne que sa durée de validité : 0 "
            f"({_quoted('sans preuve')}, {_quoted('preuve périmée')}) ; un agent silencieux ne "
            "fait jamais monter le score.",
            "Non applicable : seulement si le profil déclaré l'établissement le dit ; la mesure "
            "ne pèse alors rien. Risque accepté : 0. Mesure compensatoire : un score fixé par "
            "le référentiel (la moitié, sauf exception), jusqu'à l'échéance.",
        ],
    )
    doc.subheading("Score global")
    weights = ", ".join(f"{d.id} {french.number(d.weight)}" for d in f.domains)
    doc.bullets(
        size=8.5,
        items=[
            "Score d'un domaine : moyenne de ses mesures applicables pondérée par leurs poids, "
            "sur 100. Score global : moyenne des domaines pondérée par leurs poids "
            f"({weights}), sur les domaines qui ont une mesure applicable.",
            "Gain d'une correction : 100 × la part de la mesure dans le score global × (1 − "
            "son score). La couverture est la part de ce poids qui a une preuve à jour ; la "
            f"part {_quoted('preuves')} celle qui est observée par Vigie ou vérifiée par le "
            "CERT.",
            "Comparables : les établissements de même catégorie et région, chacun par son "
            "dernier score des 7 jours précédents ; à moins de 5, ceux de même catégorie en "
            "France, puis tous ; sans groupe de 5, pas de rang.",
        ],
    )
    doc.subheading("Niveaux")
    levels = []
    for lv in f.levels:
        if lv.min_ratio is not None:
            rule = (
                f"les mesures de niveau {lv.level} atteignent {french.percent(lv.min_ratio)} "
                f"de leur poids, et aucune mesure critique jusqu'au niveau {lv.level} n'est "
                "sous 100 %"
            )
        elif lv.min_domain_score is not None:
            held = ", ".join(str(d) for d in lv.held_days or [])
            rule = (
                f"niveau 4, chaque domaine au moins à {french.number(lv.min_domain_score)}, "
                f"et le niveau 4 tenu il y a {held} jours"
            )
        else:
            rule = "le point de départ"
        levels.append([str(lv.level), lv.name, rule])
    doc.grid(["Niveau", "Nom", "Atteint quand"], levels, widths=[16, 34, 124],
             align=["RIGHT", "LEFT", "LEFT"], size=7.5)  # fmt: skip
    doc.paragraph("Le niveau est le plus haut dont la condition est remplie, et celles de "
                  "tous les niveaux en dessous.", size=8.5)  # fmt: skip
    doc.subheading("Traçabilité")
    same = r.framework.digest == f.digest
    rows = [
        (
            "Référentiel",
            f"{r.framework.id} version {r.framework.version} : {f.framework.title}"
            if same
            else f"{r.framework.id} version {r.framework.version}",
        ),  # fmt: skip
        ("SHA-256 du fichier du référentiel", _digest(r.framework.digest)),
        (
            "Instantané",
            f"{r.snapshot}, du {french.day(r.as_of)}, calculé le {french.moment(r.computed_at)}",
        ),  # fmt: skip
        ("Empreinte des données (SHA-256)", _digest(r.inputs_digest)),
        ("Versions", " · ".join(f"{k} {v}" for k, v in c.versions.items())),
    ]
    doc.facts(rows, label_width=0.3)
    notes = [
        "L'empreinte des données résume tout ce que le calcul a lu ; recalculer l'instantané "
        "(GET /establishments/{finess}/maturity/snapshots/{id}/recompute) dit si elles sont "
        "encore les mêmes.",
        "Les versions sont celles du logiciel qui a produit ce fichier : une autre version peut "
        "produire d'autres octets pour le même contenu.",
    ]
    if not same:
        notes.insert(0, f"Le service applique aujourd'hui la version {f.version} du "
                        f"référentiel (SHA-256 {f.digest}) ; ce rapport décrit le calcul de "
                        f"l'instantané, fait avec la version {r.framework.version}.")  # fmt: skip
    doc.paragraph(" ".join(notes), size=8, muted=True)
