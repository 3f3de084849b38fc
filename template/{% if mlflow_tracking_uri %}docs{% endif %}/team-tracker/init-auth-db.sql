-- Run once by the postgres image on an empty data directory: the basic-auth app's database.
CREATE DATABASE mlflow_auth OWNER mlflow;
