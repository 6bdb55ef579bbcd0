"""Search: retrieving items for a query (lexical, dense, hybrid) and nearest neighbours at scale (:mod:`recnb.search.ann`)."""
