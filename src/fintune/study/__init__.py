"""Comparison studies (`fintune compare`) and hyperparameter search (`fintune sweep`)."""
