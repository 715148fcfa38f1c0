"""graphrec's shared core: configuration, the database, artifact formats, metrics, runs, logs and alerts.

Every stage (etl, training, serving, evaluation) imports from here; nothing here imports a stage.
"""
