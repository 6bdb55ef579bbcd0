"""Studies that put models, metrics and policies together on the shop's truth or real data.

- :mod:`recnb.studies.simulate` -- bandit, cold-start and feedback-loop simulations;
- :mod:`recnb.studies.bench` -- peer libraries (implicit, cornac) behind recnb's interface;
- :mod:`recnb.studies.privacy` -- anonymisation and linkage, the Laplace mechanism, FedAvg.
"""
