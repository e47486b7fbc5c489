"""Every table, so that Alembic and the tests see the whole schema."""

from __future__ import annotations


def load_all() -> None:
    from api.agents import models as agent_models
    from api.alerts import models as alert_models
    from api.apikeys import models as apikey_models
    from api.audit import models as audit_models
    from api.auth import models as auth_models
    from api.establishments import models as establishment_models
    from api.incidents import models as incident_models
    from api.ingest import models as ingest_models
    from api.jobs import models as job_models
    from api.maturity import models as maturity_models
    from api.notifications import models as notification_models
    from api.reports import models as report_models
    from api.web import sessions as web_sessions

    del agent_models, audit_models, auth_models, establishment_models, ingest_models
    del alert_models, incident_models, job_models, apikey_models, notification_models
    del maturity_models, report_models, web_sessions
