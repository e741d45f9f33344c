"""Reading, featurising and augmenting Kaggle's landmark data."""
