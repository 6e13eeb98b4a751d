"""The data the pipeline accepts: the columns (schema), the input contract and its one-line refusals, the drift test of a batch against the training data."""
