-- MLflow's tracking and registry store: a second database in the same server, owned by the same role
-- (the entrypoint runs this as POSTGRES_USER). Runs once, when the data volume is first initialised.
CREATE DATABASE mlflow;
