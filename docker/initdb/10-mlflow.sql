-- The MLflow tracking server's backend store, beside Optuna's database (POSTGRES_DB).
CREATE DATABASE mlflow;
