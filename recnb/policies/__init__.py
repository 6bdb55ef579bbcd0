"""Policies applied to a fitted model's scores before a list is shown.

- :mod:`recnb.policies.rerank` -- MMR and calibrated re-ranking, score thresholds, list yardsticks;
- :mod:`recnb.policies.explain` -- a model's score decomposition as sentences;
- :mod:`recnb.policies.bandits` -- exploration: ε-greedy, UCB1, Thompson sampling, LinUCB, regret.
"""
