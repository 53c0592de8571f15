"""Model code shared by training and serving: targets, estimators, the MLflow bundle, explanations, strategies."""
