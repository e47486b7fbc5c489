"""The statistics' columns, each with its definition, and the notes of the `definitions`
sheet (French: they are the document's text)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.maturity import peers
from api.maturity.framework import Framework
from api.reports import french
from api.reports.stats_counts import HEARD_WITHIN
from api.reports.suppression import THRESHOLD
from api.reports.tables import Column

if TYPE_CHECKING:
    from api.reports.stats import Context


def cohort_columns() -> list[Column]:
    return [
        Column(
            "région",
            "Région de l'établissement (celle de son ARS) ; « Ensemble » : toutes les régions.",
            width=26,
        ),
        Column(
            "catégorie d'établissement",
            "CHU, centre hospitalier, clinique, EHPAD, psychiatrie, SSR ou autre ; "
            "« Ensemble » : toutes les catégories.",
            width=18,
        ),
        Column(
            "statut juridique",
            "Famille de statut FINESS : public, privé non lucratif, privé commercial ; "
            "« non renseigné » quand Vigie ne le connaît pas ; « Ensemble » : tous les statuts.",
            width=18,
        ),
    ]


ETABLISSEMENTS = [
    Column(
        "établissements",
        "Établissements de la cohorte enregistrés dans Vigie à la date d'arrêté.",
        "int",
    ),
    Column(
        "avec agent actif",
        "Établissements ayant au moins un agent actif à la date d'arrêté : enrôlé au plus tard "
        "à cette date, non révoqué à cette date, entendu (battement de cœur) dans les "
        f"{HEARD_WITHIN.days} jours qui la précèdent.",
        "int",
    ),
    Column(
        "agents actifs",
        "Agents actifs (même définition) de ces établissements. Masqué selon le nombre "
        "d'établissements avec agent actif.",
        "int",
    ),
    Column("couverture (%)", "avec agent actif ÷ établissements.", "percent"),
]


def score_columns(framework: Framework) -> list[Column]:
    version = framework.version
    columns = [
        Column(
            "établissements notés",
            f"Établissements ayant un instantané de maturité du référentiel {version} daté des "
            f"{peers.WINDOW_DAYS} jours qui finissent le jour (UTC) de la date d'arrêté et "
            "calculé au plus tard à cette date ; le plus récent de chacun compte.",
            "int",
        ),
        Column("score médian", "Médiane des scores (0 à 100) des établissements notés.", "float"),
        Column(
            "score P25",
            "Premier quartile des scores (méthode inclusive : interpolation linéaire).",
            "float",
        ),
        Column("score P75", "Troisième quartile des scores (même méthode).", "float"),
        Column("score moyen", "Moyenne des scores des établissements notés.", "float"),
    ]
    columns += [
        Column(
            f"niveau {lv.level}",
            f"Établissements notés au niveau {lv.level} « {lv.name} ».",
            "int",
            width=10,
        )
        for lv in framework.levels
    ]
    return columns


CONTROLES = [
    Column("contrôle", "Identifiant du contrôle dans le référentiel.", width=10),
    Column("intitulé", "Intitulé du contrôle.", width=60),
    Column("domaine", "Domaine du référentiel auquel le contrôle appartient.", width=30),
    Column(
        "évalués",
        "Établissements notés (voir la feuille scores) dont le contrôle a été jugé sur "
        "preuve : conforme, partiel ou non conforme. Ne comptent pas : sans preuve, preuve "
        "périmée, non applicable, risque accepté, compensé.",
        "int",
    ),
    Column("conformes (%)", "Part des évalués où le contrôle est conforme.", "percent"),
    Column("partiels (%)", "Part des évalués où le contrôle est partiellement atteint.", "percent"),
    Column("non conformes (%)", "Part des évalués où le contrôle n'est pas atteint.", "percent"),
]

_PERIOD_INCIDENTS = "Incidents de la cohorte créés sur la période (exercices de crise exclus)"
_BEHIND = "Masqué selon le nombre d'établissements dont ces incidents proviennent."
INCIDENTS = [
    Column(
        "catégorie d'incident",
        "Catégorie du signalement national des incidents (rançongiciel, hameçonnage, "
        "violation de données, déni de service, intrusion, indisponibilité, autre) ; "
        "« Ensemble » : toutes les catégories.",
        width=20,
    ),
    Column(
        "établissements touchés",
        "Établissements de la cohorte ayant au moins un incident de la catégorie créé sur la "
        "période.",
        "int",
    ),
    Column("incidents", f"{_PERIOD_INCIDENTS}. {_BEHIND}", "int"),
    Column("sans impact sur les soins", f"Parmi eux, sans impact sur les soins. {_BEHIND}", "int"),
    Column(
        "soins dégradés",
        f"Parmi eux, les soins continuent en mode dégradé ou ralenti. {_BEHIND}",
        "int",
    ),
    Column(
        "soins interrompus",
        f"Parmi eux, des soins arrêtés ou des patients transférés. {_BEHIND}",
        "int",
    ),
    Column("impact inconnu", f"Parmi eux, impact sur les soins non connu. {_BEHIND}", "int"),
    Column(
        "notifiables",
        f"Parmi eux, incidents significatifs : les échéances NIS2 s'appliquent. {_BEHIND}",
        "int",
    ),
]
for _short, _name, _delay in (("ew", "alerte précoce", "24 h"), ("nt", "notification", "72 h")):
    INCIDENTS += [
        Column(
            f"{_name} à temps",
            f"Incidents notifiables dont l'{_name} (due {_delay} après la prise de "
            f"connaissance) a été envoyée au plus tard à l'échéance, et au plus tard à la date "
            f"d'arrêté. {_BEHIND}",
            "int",
        ),
        Column(
            f"{_name} en retard",
            f"Incidents notifiables dont l'{_name} a été envoyée après l'échéance, ou n'était "
            f"pas envoyée à la date d'arrêté alors que l'échéance était passée. {_BEHIND}",
            "int",
        ),
        Column(
            f"{_name} en attente",
            f"Incidents notifiables dont l'{_name} n'était pas envoyée à la date d'arrêté, "
            f"l'échéance n'étant pas atteinte. {_BEHIND}",
            "int",
        ),
        Column(
            f"{_name} à temps (%)",
            f"{_name} à temps ÷ ({_name} à temps + {_name} en retard) : les échéances en "
            "attente ne comptent pas.",
            "percent",
        ),
    ]

_PAIRS = "Masqué selon le nombre d'établissements ciblés."
ALERTES = [
    Column(
        "alertes publiées",
        "Alertes du CERT créées sur la période (retirées depuis comprises) destinées à au "
        "moins un établissement de la cohorte.",
        "int",
    ),
    Column(
        "établissements ciblés",
        "Établissements de la cohorte destinataires d'au moins une de ces alertes.",
        "int",
    ),
    Column("couples ciblés", f"Couples (alerte, établissement destinataire). {_PAIRS}", "int"),
    Column(
        "couples accusés",
        f"Couples dont l'accusé de réception a été donné au plus tard à la date d'arrêté, dans "
        f"le délai ou non. {_PAIRS}",
        "int",
    ),
    Column(
        "couples échus",
        "Couples jugés : accusés, ou sans accusé alors que le délai est passé (sauf alerte "
        f"retirée avant son échéance). {_PAIRS}",
        "int",
    ),
    Column("accusés dans le délai", "Couples accusés au plus tard à l'échéance.", "int"),
    Column("dans le délai (%)", "accusés dans le délai ÷ couples échus.", "percent"),
    Column(
        "en attente",
        f"Couples sans accusé dont l'échéance n'était pas atteinte à la date d'arrêté. {_PAIRS}",
        "int",
    ),
    Column(
        "retirés avant échéance",
        "Couples sans accusé d'une alerte retirée par le CERT avant son échéance : rien à "
        f"accuser, ils ne sont pas jugés. {_PAIRS}",
        "int",
    ),
]
DEFINITIONS = [
    Column("feuille", "La feuille où se trouve la colonne (« toutes » : le rapport).", width=16),
    Column("colonne", "L'en-tête de la colonne, ou le sujet de la note.", width=28),
    Column("définition", "Ce que la colonne contient, ou la note.", width=110),
]


def notes(found: Context, region: str | None) -> list[tuple[str, str]]:
    """The report's notes (topic, text), before the columns' definitions."""
    cutoff, framework = found.cutoff, found.framework
    said = [
        (
            "date d'arrêté",
            f"{french.moment(cutoff)} heure de Paris ({french.iso(cutoff)}). Rien de postérieur "
            "n'est compté : établissements, agents, instantanés, incidents, alertes et accusés "
            "enregistrés plus tard, rapports NIS2 envoyés plus tard.",
        ),
        (
            "période",
            f"Incidents et alertes créés du {french.moment(found.start)} (exclu) au "
            f"{french.moment(cutoff)} (inclus), heure de Paris : les 12 mois qui précèdent la "
            "date d'arrêté.",
        ),
        (
            "périmètre",
            "National."
            if region is None
            else f"Région {region} : les lignes de cette région du rapport national, "
            "avec les mêmes cellules masquées.",
        ),
        (
            "cohortes",
            "Une ligne par combinaison de région, de catégorie d'établissement et de statut "
            "juridique ; « Ensemble » désigne toutes les valeurs (ligne de marge). Feuilles "
            "etablissements, scores et alertes : toutes les combinaisons ; controles et "
            "incidents : national, chaque région, chaque catégorie, chaque statut, et chaque "
            "région × catégorie. Chaque établissement est classé selon ce que Vigie en "
            "enregistre à la date de production (région, catégorie et statut n'ont pas "
            "d'historique).",
        ),
        (
            "référentiel",
            f"{framework.id} version {framework.version} ({framework.framework.title}), "
            f"sha256 {framework.digest}. Délais d'accusé de réception des alertes : ceux du "
            f"contrôle {found.ack_control}, {french.number(found.critical_hours)} h pour une "
            f"alerte critique ou élevée, {french.number(found.other_hours)} h sinon, depuis la "
            "publication.",
        ),
        (
            "s",
            f"Secret statistique, masquage primaire : toutes les cellules d'une cohorte de "
            f"moins de {THRESHOLD} établissements ; toute cellule qui compte de 1 à "
            f"{THRESHOLD - 1} établissements (pour des incidents : les établissements dont ils "
            "proviennent ; pour des couples d'alertes : les établissements ciblés) ; tout "
            "taux, quantile ou moyenne dont un des nombres est masqué. Zéro n'est pas masqué : "
            "il ne désigne aucun établissement.",
        ),
        (
            "secret secondaire",
            "Masquage complémentaire : quand une ligne « Ensemble » (somme des lignes qu'elle "
            "regroupe) ou un total de ligne (niveaux des établissements notés ; impacts des "
            "incidents ; états des échéances des notifiables ; états des couples d'alertes) "
            "ne laisserait qu'une seule cellule masquée parmi ses parties, une deuxième est "
            "masquée (la plus petite non nulle), ou le total. Aucune cellule masquée ne se "
            "déduit donc d'un total par une soustraction ; ce n'est pas un audit complet : des "
            "déductions combinant plusieurs totaux, ou plusieurs feuilles, ne sont pas "
            "exclues. Le nombre d'établissements d'une cohorte vient du registre FINESS, "
            "public.",
        ),
        ("valeur vide", "Un taux, un quantile ou une moyenne sans rien à calculer."),
        (
            "exclusions",
            "Les exercices de crise ne sont pas des incidents : ils ne sont pas comptés. La "
            "catégorie, l'impact sur les soins et le caractère notifiable d'un incident sont "
            "ceux enregistrés à la date de production.",
        ),
    ]
    return said
