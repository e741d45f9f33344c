"""Reading, batching and augmenting Kaggle's landmark data."""
