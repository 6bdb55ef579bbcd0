"""Recommenders, all behind one interface: :class:`recnb.models.base.Recommender`."""
