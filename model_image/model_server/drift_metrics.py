"""The names and labels of the drift metrics the model server exports on `/metrics`: the contract alert rules use.

Plain constants, no imports, so rule generators and dashboards can import this module without the server's
dependencies. Every series is a gauge; with WORKERS > 1 the value shown is the live workers' maximum (scores, ratio,
enabled, threshold) or sum (window rows), as `model_server.metrics` declares them. The model's identity is not
repeated on these series: join with `model_server_model_info` (same target) for `model_name` and `model_version`.
"""

from __future__ import annotations

MONITORING_ENABLED = "model_server_drift_monitoring_enabled"
"""1 while drift is measured (the model has a drift reference and DRIFT_MONITORING is on), else 0. No labels."""

FEATURE_SCORE = "model_server_drift_feature_score"
"""Population stability index of the window against the training data, per feature; NaN until the window holds
DRIFT_MIN_ROWS rows. Label `feature`: the input column's name."""

DRIFTED_FEATURES_RATIO = "model_server_drift_drifted_features_ratio"
"""Share (0-1) of monitored features whose score is above DRIFT_PSI_THRESHOLD; NaN until the window is full enough.
No labels."""

WINDOW_ROWS = "model_server_drift_window_rows"
"""Rows in the sliding window the scores describe (at most DRIFT_WINDOW_ROWS). No labels."""

THRESHOLD = "model_server_drift_threshold"
"""The server's DRIFT_PSI_THRESHOLD, for dashboards (alert rules carry their own per-stack threshold). No labels."""

FEATURE_LABEL = "feature"

LABELS: dict[str, tuple[str, ...]] = {
    MONITORING_ENABLED: (),
    FEATURE_SCORE: (FEATURE_LABEL,),
    DRIFTED_FEATURES_RATIO: (),
    WINDOW_ROWS: (),
    THRESHOLD: (),
}
"""Every drift metric name -> its label names."""
