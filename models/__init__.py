"""Model code shared by training and serving: estimators, the bundle, the registry's read side, explanations."""
