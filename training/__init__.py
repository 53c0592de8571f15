"""Pipelines: train, tune, evaluate, backtest, reports, registry."""
