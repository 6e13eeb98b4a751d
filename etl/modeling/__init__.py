"""The procedure and its statistics: the candidate models, the training procedure every step runs (cross-validation, thresholds, selection), the small-sample statistics its numbers rest on."""
