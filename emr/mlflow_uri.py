"""Print the MLflow tracking URI of the stack's registry database (run_stage.sh exports it).

    postgresql+psycopg2://<user>:<password>@<host>:<port>/<database>?sslmode=require

(the driver named: psycopg2-binary is in the runtime lock, and SQLAlchemy 2.1 defaults to psycopg 3).

The user and password come from the RDS-managed Secrets Manager secret (EMR_REGISTRY_SECRET_ARN), the
address from conf/nlp.env (EMR_REGISTRY_HOST, EMR_REGISTRY_PORT, EMR_REGISTRY_DATABASE). Both are
URL-quoted. With no secret configured it prints NLP_MLFLOW_TRACKING_URI as it is (a local run).
"""
from __future__ import annotations

import json
import os
import sys
from urllib.parse import quote


def tracking_uri(env: dict[str, str]) -> str:
    arn = env.get("EMR_REGISTRY_SECRET_ARN", "")
    if not arn:
        return env.get("NLP_MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    import boto3

    secret = json.loads(boto3.client("secretsmanager", region_name=env.get("AWS_REGION"))
                        .get_secret_value(SecretId=arn)["SecretString"])
    user, password = quote(secret["username"], safe=""), quote(secret["password"], safe="")
    host, port, database = env["EMR_REGISTRY_HOST"], env.get("EMR_REGISTRY_PORT", "5432"), env["EMR_REGISTRY_DATABASE"]
    return f"postgresql+psycopg2://{user}:{password}@{host}:{port}/{quote(database, safe='')}?sslmode=require"


if __name__ == "__main__":
    try:
        print(tracking_uri(dict(os.environ)))
    except Exception as exc:   # one line, never the secret
        print(f"ERROR: the registry's URI: {type(exc).__name__} reading {os.environ.get('EMR_REGISTRY_SECRET_ARN')}",
              file=sys.stderr)
        sys.exit(2)
