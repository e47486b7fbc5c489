"""The dashboards' data, installed with the package: the web dashboard's templates, assets and
region map (`web/`, served by `api/web/`), and Kibana saved objects (`kibana/`)."""
