"""Training jobs: an engineer starts one from the browser or the API, `qc worker` runs it.

- store.py: jobs in the qc database (create, cancel, retry, stale detection, JSON view)
- queue.py: the Huey queue on the qc database (SQLite or PostgreSQL) and its one task
- runner.py: what the task does: gather the data, call training's `run_training`, store the model
- progress.py: stage, progress, ETA and log read from training's tqdm bars and log records
- upload.py: a hostile-input-safe reader of uploaded dataset zips
- worker.py / api.py / compare.py / teach.py: `qc worker`, the HTTP routes, compare, teach mode
"""
